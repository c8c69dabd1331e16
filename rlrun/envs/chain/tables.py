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
