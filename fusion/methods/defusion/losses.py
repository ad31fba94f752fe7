"""DeFusion's self-supervised loss and its views, as the authors' code computes them
(loss/mix_fp_loss.py, data/self_mixpretrain_dataset.py):

Two views of one image x: x m_1 + n_1 (1 - m_1) and x m_2 + n_2 (1 - m_2), with n the absolute
value of Gaussian noise clipped to [0, 1] and m_1, m_2 random block masks (13 x 13 and 26-27 x 26-27
Bernoulli grids of one rate drawn from [0.1, 0.99), multiplied, the fine size drawn once per image
for both; a pixel neither mask keeps goes to one of them by a third grid, of 13 cells, of that fine
size or of a second drawn one; the two swapped at random). With c = m_1 m_2 the part both views
keep and u_k = |m_k - c| each view's own part, the network's common image C, unique images U_1,
U_2 and fused image F are trained by

    L = |C ⊙ c' - x c|_1 + |U_1 ⊙ u_1' - x u_1|_1 + |U_2 ⊙ u_2' - x u_2|_1 + β |x - F|_1

(means over pixels). Up to step 3,000 the predictions are masked (z' = z, α = 0); then
z' = α + (1 - α) z with α = 0.15 (min(step, 7,000) / 7,000)², a tenth of that after step 40,000.
The fused term enters at step 17,000 with β = (min(step - 10,000, 14,000) / 14,000)².

DECISION (ours): ``schedule_scale`` multiplies every step threshold above, so a schedule shorter
than the authors' (the CPU configs) runs the same stages in fewer steps; 1 is theirs. Not in
proportion to a short run's length: the authors' fused term enters at 3 % of their 625,000 steps,
and at 3 % of a CPU run (mfnet-cpu: step 24) the fused head went black in the second epoch, so
the CPU configs let it enter about halfway.
DECISION (ours: COCO cannot be had offline): the authors train on 50,000 COCO photographs
(random resized crops, colour jitter); here on the experiment's training frames, each infrared
frame and each visible luminance frame a single grey image (fed as three equal channels), in
random crops without jitter.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

THRESHOLDS = {
    "masked": 3000,
    "anneal": 7000,
    "fused": 17000,
    "fused_from": 10000,
    "fused_ramp": 14000,
    "late": 40000,
}


def _grids(cells: int, rates: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """One Bernoulli grid of ``cells`` x ``cells`` per rate, nearest-upsampled to ``size``."""
    grid = torch.bernoulli(rates.view(-1, 1, 1, 1).expand(-1, 1, cells, cells))
    return F.interpolate(grid, size=size, mode="nearest")


def mixing_masks(count: int, size: tuple[int, int], device) -> tuple[torch.Tensor, torch.Tensor]:
    """(m_1, m_2), each (count, 1, H, W) of 0 and 1, drawn on ``device`` (nothing read back)."""
    rates = 0.1 + torch.rand(count, device=device) / 1.12
    coin = lambda: torch.rand(count, 1, 1, 1, device=device) < 0.5  # noqa: E731
    fine = lambda cells26: torch.where(cells26, _grids(26, rates, size), _grids(27, rates, size))  # noqa: E731
    # one fine grid size per image for both views and a second for the third grid (the
    # authors' grid_num2 and grid_num3); each grid is its own draw
    views26, third26 = coin(), coin()
    grid1 = _grids(13, rates, size) * fine(views26)
    grid2 = _grids(13, rates, size) * fine(views26)
    pick = torch.rand(count, 1, 1, 1, device=device)
    grid3 = torch.where(
        pick < 0.33, _grids(13, rates, size), torch.where(pick < 0.66, fine(views26), fine(third26))
    )
    neither = ((grid1 == 0) & (grid2 == 0)).float()
    grid1, grid2 = grid1 + grid3 * neither, grid2 + (1 - grid3) * neither
    swap = coin()
    return torch.where(swap, grid2, grid1), torch.where(swap, grid1, grid2)


def schedule(step, scale: float):
    """(α, β) at optimiser step ``step`` (a number or a 0-d tensor, then tensors on its device,
    so a GPU step reads nothing back). α is 0 while the predictions are masked: z' = z then."""
    t = {name: value * scale for name, value in THRESHOLDS.items()}
    step = torch.as_tensor(step, dtype=torch.float32)
    alpha = 0.15 * (step.clamp(max=t["anneal"]) / t["anneal"]) ** 2
    alpha = torch.where(step > t["late"], alpha * 0.1, alpha)
    alpha = torch.where(step >= t["masked"], alpha, torch.zeros_like(alpha))
    beta = ((step - t["fused_from"]).clamp(max=t["fused_ramp"]) / t["fused_ramp"]) ** 2
    beta = torch.where(step >= t["fused"], beta, torch.zeros_like(beta))
    return alpha, beta


def defusion_loss(model, ir: torch.Tensor, vi: torch.Tensor, config) -> tuple[torch.Tensor, dict]:
    images = torch.cat([ir, vi]).expand(-1, 3, -1, -1)
    m1, m2 = mixing_masks(len(images), images.shape[2:], images.device)
    noise = lambda: torch.randn_like(images).abs().clamp(0, 1)  # noqa: E731
    common, unique1, unique2, fused = model(
        images * m1 + noise() * (1 - m1), images * m2 + noise() * (1 - m2)
    )
    alpha, beta = schedule(model.steps, config.schedule_scale)
    if model.training:
        model.steps += 1
    both = m1 * m2
    own1, own2 = (m1 - both).abs(), (m2 - both).abs()

    def part(prediction: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        kept = prediction * (alpha + (1 - alpha) * mask)
        return F.l1_loss(kept, images * mask)

    terms = {"common": part(common, both), "unique": part(unique1, own1) + part(unique2, own2)}
    terms["fused"] = beta * F.l1_loss(fused, images)
    total = terms["common"] + terms["unique"] + terms["fused"]
    return total, {"total": total.detach(), **{name: value.detach() for name, value in terms.items()}}
