"""Default network calibration: SimBlock's published 2019 Bitcoin measurements.

Source: SimBlock (Aoki et al., "SimBlock: A Blockchain Network Simulator", IEEE INFOCOM workshops 2019),
`simulator/src/main/java/simblock/settings/NetworkConfiguration.java` (2019 tables). Regions are
NORTH_AMERICA, EUROPE, SOUTH_AMERICA, ASIA_PACIFIC, JAPAN, AUSTRALIA. Every value is overridable from config
(`env.network.*`), so a user can load other measurements.
"""

from __future__ import annotations

REGIONS: list[str] = ["NA", "EU", "SA", "AP", "JP", "AU"]

#: mean one-way latency in milliseconds, row = from, column = to
LATENCY_MS: list[list[float]] = [
    [32, 124, 184, 198, 151, 189],
    [124, 11, 227, 237, 252, 294],
    [184, 227, 88, 325, 301, 322],
    [198, 237, 325, 85, 58, 198],
    [151, 252, 301, 58, 12, 126],
    [189, 294, 322, 198, 126, 16],
]

#: per-node download / upload bandwidth in Mbit/s, by region
DOWNLOAD_MBPS: list[float] = [52.0, 40.0, 18.0, 22.8, 22.8, 29.9]
UPLOAD_MBPS: list[float] = [19.2, 20.7, 5.8, 15.7, 10.2, 11.3]

#: share of Bitcoin nodes per region
REGION_SHARES: list[float] = [0.3316, 0.4998, 0.0090, 0.1177, 0.0224, 0.0195]

#: Illustrative skewed mining-pool distribution (shaped like 2019 Bitcoin pool shares: a few pools hold most
#: of the hash power). Relative weights; they are normalised.
POOL_HASHPOWER: list[float] = [
    0.18, 0.14, 0.12, 0.11, 0.09, 0.08, 0.07, 0.05, 0.04, 0.03, 0.03, 0.02, 0.02, 0.01, 0.005, 0.005,
]

# ---- other eras and chains (used by the named scenarios in scenarios.py) --------------------------------
# Same source file as above (SimBlock's NetworkConfiguration.java): LATENCY_2015, DOWNLOAD_BANDWIDTH_2015,
# UPLOAD_BANDWIDTH_2015 (bit/s there, Mbit/s here; the 7th entry, "inter-regional bandwidth", is unused by
# SimBlock and here), REGION_DISTRIBUTION_BITCOIN_2015, REGION_DISTRIBUTION_LITECOIN, REGION_DISTRIBUTION_DOGECOIN.

#: mean one-way latency in milliseconds, 2015
LATENCY_MS_2015: list[list[float]] = [
    [36, 119, 255, 310, 154, 208],
    [119, 12, 221, 242, 266, 350],
    [255, 221, 137, 347, 256, 269],
    [310, 242, 347, 99, 172, 278],
    [154, 266, 256, 172, 9, 163],
    [208, 350, 269, 278, 163, 22],
]
DOWNLOAD_MBPS_2015: list[float] = [25.0, 24.0, 6.5, 10.0, 17.5, 14.0]
UPLOAD_MBPS_2015: list[float] = [4.7, 8.1, 1.8, 5.3, 3.4, 5.2]
REGION_SHARES_BITCOIN_2015: list[float] = [0.3869, 0.5159, 0.0113, 0.0574, 0.0119, 0.0166]
REGION_SHARES_LITECOIN: list[float] = [0.3661, 0.4791, 0.0149, 0.1022, 0.0238, 0.0139]
REGION_SHARES_DOGECOIN: list[float] = [0.3924, 0.4879, 0.0212, 0.0697, 0.0106, 0.0182]
