"""P-DQN (Xiong et al. 2018) and MP-DQN (Bester et al. 2019) for actions Tuple(Discrete(K), Box(...)).

A parameterised action is a discrete choice k plus continuous parameters x_k for that choice. Two networks:
- the parameter network x(s) = (x_1(s), ..., x_K(s)) proposes parameters for every k at once, in normalised
  [-1, 1] units (mapped affinely to the env's Box);
- the Q-network Q(s, x) -> K values, Q(s, k, x) its k-th output.
Acting: k = argmax_k Q(s, k, x(s)) (epsilon-greedy), executed with x_k(s) plus Gaussian or OU noise.
Learning: Q regresses onto y = r + gamma^n (1 - done) max_k' Q'(s', k', x'(s')) (target networks, optional
double-DQN selection of k' by the online networks); the parameter network ascends sum_k Q(s, k, x(s)), with
Hausknecht & Stone's inverting gradients keeping x inside its bounds without a saturating tanh.

MP-DQN: P-DQN's Q(s, k, x) sees every k's parameters, so a change in x_j leaks into Q_k for j != k. MP-DQN
evaluates Q_k on the input where all other k's parameters are zeroed; the K passes are stacked into one
forward call on a [B*K, .] batch and the diagonal is read off.

Layouts (`layout`, the env's Box):
- per_action (Platform-style): the Box is the concatenation of K slices, slice k holding x_k
  (sizes `param_sizes`, default equal). The env receives the whole vector and reads slice k.
- shared (seed 000's blockchain: strategy_id + [block_size, block_interval]): the Box is one parameter vector
  used with whichever k is chosen. The agent still proposes one x_k per k (seed 000: "parameter networks
  output theta_k(s)") and sends x_k. Replay then holds only the executed x_k; for the Q update the other
  slices are filled with the parameter network's current proposals, the values Q saw when acting.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import nn

from rlrun.agents.base import Agent
from rlrun.agents.nets import adam, mlp, soft_update
from rlrun.agents.noise import ActionNoise
from rlrun.errors import ConfigError
from rlrun.replay.buffer import Batch

LAYOUTS = ("per_action", "shared")
EPS_SCHEDULES = ("episode", "linear")
LOSSES = ("mse", "huber")


class ParamNet(nn.Module):
    """x(s) for all K actions; a linear output layer (bounded by inverting gradients) or tanh."""

    def __init__(self, obs_dim: int, out_dim: int, hidden: list[int], squash: bool) -> None:
        super().__init__()
        self.net = mlp(obs_dim, hidden, out_dim, output_activation="tanh" if squash else None)
        last = [m for m in self.net if isinstance(m, nn.Linear)][-1]
        nn.init.normal_(last.weight, std=1e-3)  # start every parameter near the middle of its range
        nn.init.zeros_(last.bias)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs)


def invert_gradients(grad: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Hausknecht & Stone (2016): scale dQ/dx by the room left towards the bound it pushes at, in [-1, 1].

    grad > 0 (increase x): grad * (1 - x) / 2;  grad < 0: grad * (x + 1) / 2. Past a bound the factor turns
    negative and pushes the parameter back inside.
    """
    return torch.where(grad > 0, grad * (1.0 - x) / 2.0, grad * (x + 1.0) / 2.0)


class PDQN(Agent):
    batched_acting = True
    supported_action_spaces = ("hybrid",)
    multipass = False

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        *,
        device: str = "cpu",
        seed: int = 0,
        gamma: float = 0.99,
        batch_size: int = 128,
        layout: str = "shared",
        param_sizes: list[int] | None = None,
        q_hidden: list[int] = (128, 128),
        param_hidden: list[int] = (128, 128),
        q_lr: float = 1e-3,
        param_lr: float = 1e-4,
        tau: float = 0.01,
        param_tau: float = 0.001,
        double_dqn: bool = False,
        loss: str = "mse",
        eps_start: float = 1.0,
        eps_end: float = 0.05,
        eps_decay: float = 0.995,
        eps_schedule: str = "episode",
        eps_decay_steps: int = 10000,
        eps_random_params: bool = True,
        noise: str = "gaussian",
        noise_sigma: float = 0.1,
        noise_theta: float = 0.15,
        noise_decay: float = 1.0,
        noise_min: float = 0.0,
        inverting_gradients: bool = True,
        grad_clip: float | None = 10.0,
    ) -> None:
        super().__init__(observation_space, action_space, device=device, seed=seed, gamma=gamma,
                         batch_size=batch_size)
        self._check_options(layout, loss, eps_schedule, eps_start, eps_end, eps_decay, eps_decay_steps, tau,
                            param_tau, q_lr, param_lr)
        disc, box = action_space.spaces
        if not (np.all(np.isfinite(box.low)) and np.all(np.isfinite(box.high))) or len(box.shape) != 1:
            raise ConfigError(f"{type(self).__name__} needs a bounded 1-d Box of parameters, got {box}")
        self.K = int(disc.n)
        self.k_start = int(disc.start)
        self.box_dim = int(box.shape[0])
        self.layout = layout
        # slice k of the internal parameter vector (normalised units) is x_k
        if layout == "per_action":
            sizes = self._per_action_sizes(param_sizes)
            self._box_low, self._box_high = box.low.astype(np.float32), box.high.astype(np.float32)
        else:
            if param_sizes is not None:
                raise ConfigError("agent.param_sizes applies only to agent.layout=per_action")
            sizes = [self.box_dim] * self.K
            self._box_low = np.tile(box.low.astype(np.float32), self.K)  # bounds of every slice
            self._box_high = np.tile(box.high.astype(np.float32), self.K)
        self.param_sizes = sizes
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        self.param_dim = int(self.offsets[-1])
        self.tau, self.param_tau = float(tau), float(param_tau)
        self.double_dqn = bool(double_dqn)
        self.loss_kind = loss
        self.eps_start, self.eps_end, self.eps_decay = float(eps_start), float(eps_end), float(eps_decay)
        self.eps_schedule, self.eps_decay_steps = eps_schedule, int(eps_decay_steps)
        self.eps_random_params = bool(eps_random_params)
        self.epsilon = self.eps_start
        self.inverting_gradients = bool(inverting_gradients)
        self.grad_clip = grad_clip

        dev = self.device
        obs_dim = int(np.prod(observation_space.shape))
        self._scale = torch.as_tensor((self._box_high - self._box_low) / 2.0, device=dev)
        self._bias = torch.as_tensor((self._box_high + self._box_low) / 2.0, device=dev)
        mask = torch.zeros(self.K, self.param_dim)
        slot = torch.zeros(self.param_dim, dtype=torch.long)  # which k owns each parameter dimension
        for k in range(self.K):
            mask[k, self.offsets[k] : self.offsets[k + 1]] = 1.0
            slot[self.offsets[k] : self.offsets[k + 1]] = k
        self._mask = mask.to(dev)  # [K, D]
        self._slot = slot.to(dev)

        self.q_net = mlp(obs_dim + self.param_dim, q_hidden, self.K).to(dev)
        squash = not self.inverting_gradients
        self.param_net = ParamNet(obs_dim, self.param_dim, list(param_hidden), squash).to(dev)
        self.q_target = copy.deepcopy(self.q_net).requires_grad_(False)
        self.param_target = copy.deepcopy(self.param_net).requires_grad_(False)
        self.q_opt = adam(self.q_net.parameters(), q_lr)
        self.param_opt = adam(self.param_net.parameters(), param_lr)
        self.noise = ActionNoise(noise, self.param_dim, self.rng, noise_sigma, noise_theta, noise_decay,
                                 noise_min)
        self.updates = 0

    # ---- validation ---------------------------------------------------------------------------------
    @staticmethod
    def _check_options(layout, loss, eps_schedule, eps_start, eps_end, eps_decay, eps_decay_steps, tau,
                       param_tau, q_lr, param_lr) -> None:
        for key, value, allowed in (("layout", layout, LAYOUTS), ("loss", loss, LOSSES),
                                    ("eps_schedule", eps_schedule, EPS_SCHEDULES)):
            if value not in allowed:
                raise ConfigError(f"agent.{key} must be one of {', '.join(allowed)}, got {value!r}")
        if not 0.0 <= eps_end <= eps_start <= 1.0:
            raise ConfigError(f"need 0 <= agent.eps_end <= agent.eps_start <= 1, got {eps_end}, {eps_start}")
        if not 0.0 < eps_decay <= 1.0:
            raise ConfigError(f"agent.eps_decay must be in (0, 1], got {eps_decay}")
        if eps_decay_steps < 1:
            raise ConfigError(f"agent.eps_decay_steps must be >= 1, got {eps_decay_steps}")
        for key, value in (("tau", tau), ("param_tau", param_tau)):
            if not 0.0 < value <= 1.0:
                raise ConfigError(f"agent.{key} must be in (0, 1], got {value}")
        if not (q_lr > 0 and param_lr > 0):
            raise ConfigError("agent.q_lr and agent.param_lr must be > 0")

    def _per_action_sizes(self, param_sizes: list[int] | None) -> list[int]:
        if param_sizes is None:
            if self.box_dim % self.K:
                raise ConfigError(
                    f"agent.layout=per_action: the parameter Box has {self.box_dim} dims, not divisible by "
                    f"K={self.K}; set agent.param_sizes (one size per action) or agent.layout=shared"
                )
            return [self.box_dim // self.K] * self.K
        sizes = [int(s) for s in param_sizes]
        if len(sizes) != self.K or min(sizes) < 0 or sum(sizes) != self.box_dim:
            raise ConfigError(
                f"agent.param_sizes must list {self.K} sizes summing to the Box's {self.box_dim} dims, "
                f"got {sizes}"
            )
        return sizes

    # ---- Q evaluation -------------------------------------------------------------------------------
    def q_values(self, net: nn.Module, obs: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Q(s, k, x) for every k: [B, K]. P-DQN: one pass on [s, x]."""
        return net(torch.cat([obs, x], dim=-1))

    # ---- acting -------------------------------------------------------------------------------------
    def act_batch(self, obs: np.ndarray, explore: bool) -> list[tuple[int, np.ndarray]]:
        obs = np.asarray(obs, dtype=np.float32).reshape(len(obs), -1)
        actions: list[tuple[int, np.ndarray] | None] = [None] * len(obs)
        if explore and self.eps_random_params:  # epsilon: random k and random parameters
            for i in range(len(obs)):
                if self.rng.random() < self.epsilon:
                    actions[i] = self._env_action(int(self.rng.integers(self.K)),
                                                  self.rng.uniform(-1.0, 1.0, self.param_dim))
        rows = [i for i, a in enumerate(actions) if a is None]
        if not rows:
            return actions
        with torch.no_grad():
            o = torch.as_tensor(obs[rows], device=self.device)
            x_t = self.param_net(o).clamp(-1.0, 1.0)
            q = self.q_values(self.q_net, o, x_t)
        xs = x_t.cpu().numpy().astype(np.float64)
        ks = q.argmax(dim=1).cpu().numpy()
        if explore:
            for j in range(len(rows)):
                if not self.eps_random_params and self.rng.random() < self.epsilon:
                    ks[j] = int(self.rng.integers(self.K))  # epsilon-random k, parameters from the network
            xs = np.clip(xs + self.noise.sample(len(rows)), -1.0, 1.0)
        for j, i in enumerate(rows):
            actions[i] = self._env_action(int(ks[j]), xs[j])
        return actions

    def _env_action(self, k: int, x_norm: np.ndarray) -> tuple[int, np.ndarray]:
        x = x_norm * (self._box_high - self._box_low) / 2.0 + (self._box_high + self._box_low) / 2.0
        if self.layout == "shared":
            x = x[self.offsets[k] : self.offsets[k + 1]]
        box = self.action_space.spaces[1]
        x = np.clip(x, box.low, box.high).astype(box.dtype)
        return self.k_start + k, x

    # ---- schedules ----------------------------------------------------------------------------------
    def on_step(self, step: int) -> None:
        if self.eps_schedule == "linear":
            frac = min(1.0, step / self.eps_decay_steps)
            self.epsilon = self.eps_start + frac * (self.eps_end - self.eps_start)

    def on_episode_end(self, env_index: int = 0) -> None:
        if self.eps_schedule == "episode":  # seed 000's decay_epsilon
            self.epsilon = max(self.eps_end, self.epsilon * self.eps_decay)
        self.noise.end_episode(env_index)

    # ---- learning -----------------------------------------------------------------------------------
    def _stored_params(self, batch: Batch, k: torch.Tensor) -> torch.Tensor:
        """The replayed actions' full normalised parameter vectors [B, D]."""
        raw = batch.actions[:, 1:]
        if self.layout == "per_action":
            return ((raw - self._bias) / self._scale).clamp(-1.0, 1.0)
        # shared: the executed x_k goes into slice k; the other slices take the current proposals
        with torch.no_grad():
            x = self.param_net(batch.obs).clamp(-1.0, 1.0)
        tiled = raw.repeat(1, self.K)
        norm = ((tiled - self._bias) / self._scale).clamp(-1.0, 1.0)
        own = self._slot.unsqueeze(0) == k.unsqueeze(1)  # [B, D]
        return torch.where(own, norm, x)

    def td_target(self, batch: Batch) -> torch.Tensor:
        with torch.no_grad():
            x_next = self.param_target(batch.next_obs).clamp(-1.0, 1.0)
            q_next = self.q_values(self.q_target, batch.next_obs, x_next)  # [B, K]
            if self.double_dqn:  # choose k' with the online networks, value it with the targets
                x_online = self.param_net(batch.next_obs).clamp(-1.0, 1.0)
                k_next = self.q_values(self.q_net, batch.next_obs, x_online).argmax(dim=1, keepdim=True)
                v_next = q_next.gather(1, k_next).squeeze(1)
            else:
                v_next = q_next.max(dim=1).values
            return batch.rewards + batch.discounts * (1.0 - batch.dones) * v_next

    def _q_step(self, batch: Batch) -> tuple[float, float, torch.Tensor]:
        k = (batch.actions[:, 0].round().long() - self.k_start).clamp(0, self.K - 1)
        y = self.td_target(batch)
        x = self._stored_params(batch, k)
        q = self.q_values(self.q_net, batch.obs, x).gather(1, k.unsqueeze(1)).squeeze(1)
        per_sample = F.mse_loss(q, y, reduction="none") if self.loss_kind == "mse" else F.smooth_l1_loss(
            q, y, reduction="none")
        loss = (per_sample * batch.weights).mean() if batch.weights is not None else per_sample.mean()
        self.q_opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.q_net.parameters(), self.grad_clip)
        self.q_opt.step()
        return loss.item(), q.detach().mean().item(), (q - y).detach().abs()

    def _param_step(self, obs: torch.Tensor) -> float:
        """Ascend sum_k Q(s, k, x(s)) in x; with inverting gradients the step direction is dQ/dx rescaled."""
        x = self.param_net(obs)
        self.q_net.requires_grad_(False)  # the parameter loss must not move Q
        if self.inverting_gradients:
            x_leaf = x.detach().requires_grad_(True)
            q_sum = self.q_values(self.q_net, obs, x_leaf).sum()  # rows independent: row i's grad is dQ_i/dx_i
            (grad,) = torch.autograd.grad(q_sum, x_leaf)
            grad = invert_gradients(grad, x_leaf.detach())
            loss = -(grad * x).sum(dim=1).mean()  # d loss / dx_i = -inverted dQ_i/dx_i / B, as the tanh mode's
            reported = -q_sum.item() / len(obs)
        else:
            loss = -self.q_values(self.q_net, obs, x).sum(dim=1).mean()
            reported = loss.item()
        self.q_net.requires_grad_(True)
        self.param_opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.param_net.parameters(), self.grad_clip)
        self.param_opt.step()
        return reported

    def update(self, batch: Batch) -> dict[str, Any]:
        q_loss, q_mean, td = self._q_step(batch)
        param_loss = self._param_step(batch.obs)
        soft_update(self.q_target, self.q_net, self.tau)
        soft_update(self.param_target, self.param_net, self.param_tau)
        self.updates += 1
        return {
            "loss/q": q_loss,
            "loss/param": param_loss,  # -sum_k Q(s, k, x(s)), batch mean
            "train/q": q_mean,
            "train/epsilon": self.epsilon,
            "td_error": td.cpu().numpy(),
        }

    # ---- persistence --------------------------------------------------------------------------------
    def modules(self) -> dict[str, Any]:
        return {
            "q_net": self.q_net,
            "param_net": self.param_net,
            "q_target": self.q_target,
            "param_target": self.param_target,
            "q_opt": self.q_opt,
            "param_opt": self.param_opt,
        }

    def extra_state(self) -> dict[str, Any]:
        return {"epsilon": self.epsilon, "noise": self.noise.state_dict(), "updates": self.updates}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.epsilon = float(state["epsilon"])
        self.noise.load_state_dict(state["noise"])
        self.updates = int(state["updates"])


class MPDQN(PDQN):
    """Multi-pass P-DQN: Q_k sees only x_k (other actions' parameters zeroed), K passes in one call."""

    multipass = True

    def q_values(self, net: nn.Module, obs: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        b = obs.shape[0]
        masked = x.unsqueeze(1) * self._mask.unsqueeze(0)  # [B, K, D]: pass k keeps only slice k
        inp = torch.cat([obs.unsqueeze(1).expand(b, self.K, obs.shape[1]), masked], dim=-1)
        out = net(inp.reshape(b * self.K, -1)).reshape(b, self.K, self.K)
        return out.diagonal(dim1=1, dim2=2)  # [B, K]: output k of pass k
