"""RAFT's correlation volume and its windowed lookup (Teed & Deng 2020, §3.2; paper Eq. 15–16).

``corr(x, y) = ⟨f1(x), f2(y)⟩ / norm`` (norm = sqrt(C) by default, a float32 division as in the official code:
multiplying by 1/sqrt(C) instead differs in the last bit whenever sqrt(C) is not a power of two, e.g. C = 128). Level
``l`` of the pyramid averages the volume over 2^l × 2^l target pixels; the lookup samples a (2r+1)² window around
``coords / 2^l`` bilinearly (zero outside). Channel order follows the official code: ``channel = l·(2r+1)² + i·(2r+1)
+ j`` with **x-offset lin[i] and y-offset lin[j]** (the pretrained ``convc1`` depends on it).

SEA-RAFT (Wang et al. 2024) builds its pyramid differently: level ``l`` correlates ``f1`` with ``f2`` halved ``l`` times
by bilinear interpolation (``pyramid="features"``). A bilinear ×0.5 resize (align_corners=False) averages each 2×2
block, exactly like average pooling, so both pyramids are the same function; only the float rounding differs, and
each model uses its own for bit-exact parity with its official code.

Three implementations with the same numbers (to float tolerance):

- :class:`AllPairsCorr`: the full 4D volume ``[B·H·W, 1, H, W]`` and its pooled pyramid (official RAFT); memory
  O((HW)²).
- :class:`WindowedCorr`: correlations computed on the fly inside the windows only, against average-pooled
  ``f2`` (pooling the volume over targets equals correlating with the pooled features, by linearity, and
  bilinear sampling commutes with the dot product likewise); memory O(HW·C).
- :class:`LeanCorr`: the coarse levels precomputed as all-pairs volumes against the pooled ``f2`` (by the same
  linearity; level l holds 4^−l of the full volume), the finest level(s) computed on the fly, as many as it takes
  for the stored ones to fit :data:`LEAN_MAX_STORED_ENTRIES`. Its on-the-fly
  lookup uses that the (2r+1)² window points share one fractional part: bilinear sampling at ``p + o`` (o integer)
  is the bilinear blend, with ``frac(p)``'s weights, of the correlations at the (2r+2)² integer points around
  ``floor(p)``, which are plain dot products with gathered ``f2`` vectors (no interpolation of C-channel features);
  for a TILE × TILE tile of query pixels with nearby centres (smooth flow) those points lie in one small region, and
  the tile's dot products are one matrix product with it.
  What a 1080p frame pair costs with each: BENCHMARKS.md, "Correlation at 1080p".
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from daflow.flow.warp import sample_at

# All-pairs volumes above this many entries (B·(HW)²) switch to the lean lookup in "auto" mode on a CPU. Chosen by
# time, not only memory: on 2 cores the lean lookup is as fast at 256x256 (1 M entries: 0.135 s against 0.131 for the
# default model) and faster from 384x512 on (9.4 M: 0.41 against 0.435 s; 640x480, 23 M: 0.65 against 0.72 s;
# 1280x720, 207 M: 2.29 against 3.26 s and a sixth of the memory); the two agree to 1e-4 px. On a GPU the limit grows
# to what fits in a third of the free memory.
AUTO_ALL_PAIRS_MAX_ENTRIES = 5_000_000
CORR_MODES = ("auto", "all-pairs", "windowed", "lean")
# LeanCorr stores the coarse levels from the first one whose volumes (with the coarser ones) fit this many entries
# (400 MB of float32); the finer levels are computed on the fly. A 1080p pair stores levels 2-3 (89 M entries).
LEAN_MAX_STORED_ENTRIES = 100_000_000


def lean_direct_levels(entries: int, num_levels: int, max_stored: int | None = None) -> int:
    """How many of the finest levels :class:`LeanCorr` computes on the fly for a level-0 volume of ``entries``
    (B·(HW)²): at least 1, then as many as it takes for the stored levels to fit ``max_stored`` (default
    :data:`LEAN_MAX_STORED_ENTRIES`)."""
    max_stored = LEAN_MAX_STORED_ENTRIES if max_stored is None else max_stored
    direct = 1
    while direct < num_levels and entries * sum(4.0**-lv for lv in range(direct, num_levels)) > max_stored:
        direct += 1
    return direct


def _full(x: torch.Tensor) -> torch.Tensor:
    """Correlations in at least float32 (official RAFT casts half-precision features up); float64 stays."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


PYRAMIDS = ("volume", "features")


def halve(fmap: torch.Tensor) -> torch.Tensor:
    """SEA-RAFT's feature pyramid step: bilinear ×0.5, align_corners=False (= 2×2 average, floor size)."""
    return F.interpolate(fmap, scale_factor=0.5, mode="bilinear", align_corners=False)


def _check_pyramid(pyramid: str) -> None:
    if pyramid not in PYRAMIDS:
        raise ValueError(f"corr pyramid must be one of {PYRAMIDS}, got {pyramid!r}")


def window_offsets(radius: int, *, device=None, dtype=torch.float32) -> torch.Tensor:
    """``[(2r+1)², 2]`` (dx, dy) offsets in the official channel order (x varies slowest)."""
    lin = torch.linspace(-radius, radius, 2 * radius + 1, device=device, dtype=dtype)
    dx, dy = torch.meshgrid(lin, lin, indexing="ij")
    return torch.stack([dx.reshape(-1), dy.reshape(-1)], dim=-1)


Features = torch.Tensor | tuple[torch.Tensor, ...]


def _parts(fmap: Features) -> tuple[torch.Tensor, ...]:
    return fmap if isinstance(fmap, tuple) else (fmap,)


def default_norm(channels: int) -> torch.Tensor:
    """The official divisor ``torch.sqrt(torch.tensor(C).float())`` (a float32 0-dim tensor)."""
    return torch.sqrt(torch.tensor(float(channels), dtype=torch.float32))


def _as_norm(norm: float | torch.Tensor | None, fmap: Features) -> torch.Tensor:
    if norm is None:
        return default_norm(_channels(fmap))
    return norm if isinstance(norm, torch.Tensor) else torch.tensor(float(norm), dtype=torch.float32)


def _volume(fmap1: Features, fmap2: Features, norm: torch.Tensor) -> torch.Tensor:
    """``[B·H1·W1, 1, H2, W2]`` all-pairs dot products of ``[B, C, H1, W1]`` and ``[B, C, H2, W2]``.

    Features may come in channel parts (a tuple, e.g. DA-Flow's RAFT and diffusion features, Eq. 15): the dot
    products of the parts are added, so an all-zero part changes nothing, not even the rounding."""
    corr = None
    for a, c2 in zip(_parts(fmap1), _parts(fmap2)):
        b, c, h, w = a.shape
        h2, w2 = c2.shape[-2:]
        part = torch.matmul(_full(a).reshape(b, c, h * w).transpose(1, 2), _full(c2).reshape(b, c, h2 * w2))
        corr = part if corr is None else corr + part
    return (corr / norm).reshape(b * h * w, 1, h2, w2)


def _feature_pyramid(fmap2: Features, num_levels: int, pyramid: str) -> list[torch.Tensor]:
    """``f2`` (parts concatenated, at least float32) and its ``num_levels − 1`` coarser versions: 2×2 average pooling
    (``pyramid="volume"``: pooling the volume over targets equals correlating with pooled features) or SEA-RAFT's
    bilinear halving (``"features"``)."""
    levels = [torch.cat([_full(f) for f in _parts(fmap2)], 1)]
    for _ in range(num_levels - 1):
        levels.append(F.avg_pool2d(levels[-1], 2, stride=2) if pyramid == "volume" else halve(levels[-1]))
    return levels


def _lookup_volume(corr: torch.Tensor, centre: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Bilinear lookup of one stored level ``corr`` ``[BHW, 1, h, w]`` at ``centre`` ``[BHW, 1, 1, 2]`` (this level's
    pixel units) plus the window ``offsets`` ``[K, 2]`` → ``[BHW, K]`` (zero outside)."""
    k = offsets.shape[0]
    pts = centre + offsets.view(1, 1, k, 2)  # [BHW, 1, K, 2]
    return sample_at(corr, pts.permute(0, 3, 1, 2)).view(-1, k)  # sampled [BHW, 1, 1, K]


class _Corr:
    """What the three correlation classes share: the pyramid kind, levels, lookup radius and the dot-product norm
    (default √C); a subclass builds its levels in ``_build``."""

    def __init__(
        self,
        fmap1: Features,
        fmap2: Features,
        *,
        num_levels: int = 4,
        radius: int = 4,
        norm: float | torch.Tensor | None = None,
        pyramid: str = "volume",
    ):
        _check_pyramid(pyramid)
        self.num_levels, self.radius = num_levels, radius
        self.norm = _as_norm(norm, fmap1)
        self._build(fmap1, fmap2, pyramid)

    def _build(self, fmap1: Features, fmap2: Features, pyramid: str) -> None:
        raise TypeError("a correlation class builds its levels in _build")


class AllPairsCorr(_Corr):
    """The official all-pairs correlation pyramid (``pyramid="volume"``: RAFT; ``"features"``: SEA-RAFT)."""

    def _build(self, fmap1: Features, fmap2: Features, pyramid: str) -> None:
        corr = _volume(fmap1, fmap2, self.norm)
        self.pyramid = [corr]
        for _ in range(self.num_levels - 1):
            if pyramid == "volume":
                corr = F.avg_pool2d(corr, 2, stride=2)
            else:
                fmap2 = tuple(halve(f) for f in _parts(fmap2))
                corr = _volume(fmap1, fmap2, self.norm)
            self.pyramid.append(corr)

    def __call__(self, coords: torch.Tensor) -> torch.Tensor:
        """Look up windows around ``coords`` ``[B, 2, H, W]``; returns ``[B, L·(2r+1)², H, W]``."""
        b, _, h, w = coords.shape
        offsets = window_offsets(self.radius, device=coords.device, dtype=coords.dtype)  # [K, 2]
        k = offsets.shape[0]
        centre = coords.permute(0, 2, 3, 1).reshape(b * h * w, 1, 1, 2)
        out = [
            _lookup_volume(corr, centre / 2**level, offsets).view(b, h, w, k) for level, corr in enumerate(self.pyramid)
        ]
        return torch.cat(out, dim=-1).permute(0, 3, 1, 2).contiguous()


class WindowedCorr(_Corr):
    """Correlations computed inside the lookup windows only (memory linear in the number of pixels)."""

    def _build(self, fmap1: Features, fmap2: Features, pyramid: str) -> None:
        self.fmap1 = torch.cat([_full(f) for f in _parts(fmap1)], 1)  # one sum over channels: parts need no care here
        self.pyramid = _feature_pyramid(fmap2, self.num_levels, pyramid)

    def __call__(self, coords: torch.Tensor) -> torch.Tensor:
        b, _, h, w = coords.shape
        n = 2 * self.radius + 1
        lin = torch.linspace(-self.radius, self.radius, n, device=coords.device, dtype=coords.dtype)
        out = []
        for level, f2 in enumerate(self.pyramid):
            base = coords / 2**level  # [B, 2, H, W]
            for dx in lin:  # one window row (fixed x-offset) at a time bounds the memory
                pts = base.unsqueeze(-1) + torch.stack([dx.expand(n), lin]).view(1, 2, 1, 1, n)  # [B, 2, H, W, n]
                feat = sample_at(f2, pts.reshape(b, 2, h, w * n))  # [B, C, H, W·n]
                feat = feat.view(b, -1, h, w, n)
                out.append((feat * self.fmap1.unsqueeze(-1)).sum(1) / self.norm)  # [B, H, W, n]
        # out is ordered level, i (x-offset), j (y-offset) -> official channel order
        return torch.cat(out, dim=-1).permute(0, 3, 1, 2).contiguous()


def _blend(grid: torch.Tensor, frac: torch.Tensor) -> torch.Tensor:
    """Bilinear blend of integer-point correlations ``grid`` ``[..., X, Y]`` ((2r+2)² points from floor(p) − r; x
    index first) with weights from ``frac`` ``[..., 2]`` → the (2r+1)² window values ``[..., K]``, x-offset slowest
    (the official channel order)."""
    fx, fy = frac[..., 0, None, None], frac[..., 1, None, None]
    top = grid[..., :-1, :-1] * (1 - fx) + grid[..., 1:, :-1] * fx  # y = floor
    bottom = grid[..., :-1, 1:] * (1 - fx) + grid[..., 1:, 1:] * fx  # y = floor + 1
    return (top * (1 - fy) + bottom * fy).flatten(-2)


TILE = 8  # query pixels per tile side in LeanCorr's tiled lookup
TILE_MARGIN = 8  # how far (px) the window centres of a tile may spread beyond a rigid shift before the per-pixel path


def _flat_with_zero(f2: torch.Tensor) -> torch.Tensor:
    """``[B, C, H, W]`` → ``[B, H·W + 1, C]`` channel-last rows, the last one zero (the value outside the frame)."""
    b, c, h, w = f2.shape
    rows = f2.reshape(b, c, h * w).transpose(1, 2)
    return torch.cat([rows, rows.new_zeros(b, 1, c)], 1).contiguous()


class LeanCorr(_Corr):
    """Levels ``>= direct`` precomputed (all-pairs against the pooled ``f2``), levels below on the fly by gathered
    dot products (module docstring); ``direct`` None: :func:`lean_direct_levels`. ``chunk``: query pixels per step
    of the on-the-fly lookup and of the volume products (bounds the temporaries)."""

    def __init__(self, fmap1: Features, fmap2: Features, *, direct: int | None = None, chunk: int = 1024, **options):
        num_levels = options.get("num_levels", 4)
        if direct is None:
            b, _, h, w = _parts(fmap1)[0].shape
            direct = lean_direct_levels(b * (h * w) ** 2, num_levels)
        if not 0 <= direct <= num_levels:
            raise ValueError(f"direct must be in 0..{num_levels}, got {direct}")
        self.direct, self.chunk = direct, chunk
        super().__init__(fmap1, fmap2, **options)

    def _build(self, fmap1: Features, fmap2: Features, pyramid: str) -> None:
        direct, chunk, num_levels = self.direct, self.chunk, self.num_levels
        f1 = torch.cat([_full(f) for f in _parts(fmap1)], 1)
        b, c, h, w = f1.shape
        self.f1_rows = f1.reshape(b, c, h * w).transpose(1, 2).contiguous()  # [B, HW, C]
        f2 = _feature_pyramid(fmap2, num_levels, pyramid)
        self.levels: list[torch.Tensor] = []  # level < direct: [B, H·W + 1, C] rows; else the volume [BHW, 1, h, w]
        self.shapes = [tuple(f.shape[-2:]) for f in f2]
        for level, f in enumerate(f2):
            if level < direct:
                self.levels.append(_flat_with_zero(f))
                continue
            h2, w2 = f.shape[-2:]
            vol = torch.empty(b, h * w, h2 * w2, dtype=f.dtype, device=f.device)
            target = f.reshape(b, c, h2 * w2)
            for i in range(0, h * w, chunk):
                vol[:, i : i + chunk] = torch.matmul(self.f1_rows[:, i : i + chunk], target) / self.norm
            self.levels.append(vol.view(b * h * w, 1, h2, w2))

    def _direct_lookup(
        self, rows: torch.Tensor, shape: tuple[int, int], centre: torch.Tensor, f1: torch.Tensor
    ) -> torch.Tensor:
        """Window correlations of query pixels ``f1`` ``[B, N, C]`` at ``centre`` ``[B, N, 2]`` (x, y at this level)
        against ``rows`` (:func:`_flat_with_zero`) → ``[B, N, K]``."""
        b, n, _ = centre.shape
        h2, w2 = shape
        r = self.radius
        base = centre.floor()
        frac = centre - base  # [B, N, 2]
        lin = torch.arange(-r, r + 2, device=centre.device)  # the (2r+2) integer points per axis
        qx = base[..., 0].long().unsqueeze(-1) + lin  # [B, N, 2r+2]
        qy = base[..., 1].long().unsqueeze(-1) + lin
        # a 1-pixel axis: grid_sample (align_corners=True) maps every position on it to pixel 0 (the official lookup)
        if w2 == 1:
            qx, frac = torch.zeros_like(qx), frac * torch.tensor([0.0, 1.0], device=frac.device, dtype=frac.dtype)
        if h2 == 1:
            qy, frac = torch.zeros_like(qy), frac * torch.tensor([1.0, 0.0], device=frac.device, dtype=frac.dtype)
        inside = ((qx >= 0) & (qx < w2)).unsqueeze(-1) & ((qy >= 0) & (qy < h2)).unsqueeze(-2)  # [B, N, X, Y]
        index = torch.where(inside, qy.unsqueeze(-2) * w2 + qx.unsqueeze(-1), h2 * w2)  # zero row outside
        m = 2 * r + 2
        # one row index per point (index_select reads rows; a gather would read an index per channel)
        flat = (index + torch.arange(b, device=index.device).view(b, 1, 1, 1) * rows.shape[1]).reshape(-1)
        gathered = rows.reshape(-1, rows.shape[-1]).index_select(0, flat)  # [B·N·X·Y, C]
        grid = torch.matmul(gathered.view(b * n, m * m, -1), f1.reshape(b * n, -1, 1)).view(b, n, m, m)
        return _blend(grid / self.norm, frac)

    def _tiled_lookup(
        self, rows: torch.Tensor, shape: tuple[int, int], pts: torch.Tensor, f1: torch.Tensor
    ) -> torch.Tensor:
        """:meth:`_direct_lookup` for a whole level, per tile of TILE × TILE query pixels: the tile's integer window
        points lie in one square region (when its window centres spread by at most TILE − 1 + TILE_MARGIN), whose
        correlations with the tile's features are one matrix product; tiles that spread further take the per-pixel
        path. ``pts`` ``[B, H, W, 2]`` (x, y at this level), ``f1`` ``[B, H, W, C]`` → ``[B, H, W, K]``."""
        b, h, w, _ = pts.shape
        h2, w2 = shape
        r, t = self.radius, TILE
        m = 2 * r + 2
        c = f1.shape[-1]
        ph, pw = (-h) % t, (-w) % t
        pts_p = F.pad(pts.permute(0, 3, 1, 2), (0, pw, 0, ph), mode="replicate").permute(0, 2, 3, 1)
        f1_p = F.pad(f1.permute(0, 3, 1, 2), (0, pw, 0, ph)).permute(0, 2, 3, 1)
        nty, ntx = (h + ph) // t, (w + pw) // t

        def tiles(x: torch.Tensor) -> torch.Tensor:  # [B, H, W, D] -> [B·nty·ntx, t², D]
            d = x.shape[-1]
            return x.reshape(b, nty, t, ntx, t, d).permute(0, 1, 3, 2, 4, 5).reshape(b * nty * ntx, t * t, d)

        p, q = tiles(pts_p), tiles(f1_p)
        base = p.floor()
        frac = p - base
        base = base.long()
        lo, hi = base.min(1).values, base.max(1).values  # [T, 2]
        side = t - 1 + TILE_MARGIN + m  # the region's side
        ok = ((hi - lo) <= t - 1 + TILE_MARGIN).all(-1)
        if h2 == 1 or w2 == 1:  # 1-pixel axes: the per-pixel path knows grid_sample's special case
            ok = torch.zeros_like(ok)
        k = (2 * r + 1) ** 2
        out = torch.empty(p.shape[0], t * t, k, dtype=q.dtype, device=q.device)
        tile_batch = torch.arange(b, device=p.device).repeat_interleave(nty * ntx)
        flat_rows = rows.reshape(-1, c)
        lin = torch.arange(side, device=p.device)
        corner = torch.arange(m, device=p.device)
        good = ok.nonzero().squeeze(1)
        step = max(1, self.chunk // (t * t))
        for i in range(0, len(good), step):
            sel = good[i : i + step]
            n = len(sel)
            origin = lo[sel] - r  # [n, 2] (x, y) of the region's first point
            gx, gy = origin[:, 0, None] + lin, origin[:, 1, None] + lin  # [n, S]
            inside = ((gy >= 0) & (gy < h2))[:, :, None] & ((gx >= 0) & (gx < w2))[:, None, :]  # [n, Sy, Sx]
            index = torch.where(inside, gy[:, :, None] * w2 + gx[:, None, :], h2 * w2)
            index = index + (tile_batch[sel] * rows.shape[1])[:, None, None]
            region = flat_rows.index_select(0, index.reshape(-1)).view(n, side * side, c)
            corr = torch.bmm(q[sel], region.transpose(1, 2)) / self.norm  # [n, t², S²]
            rel = base[sel] - r - origin[:, None, :]  # [n, t², 2]: each window's first point, region coordinates
            px, py = rel[..., 0, None] + corner, rel[..., 1, None] + corner  # [n, t², m]
            gi = (py[..., None, :] * side + px[..., :, None]).reshape(n, t * t, m * m)  # [n, t², X·Y]
            grid = torch.gather(corr, 2, gi).view(n, t * t, m, m)
            out[sel] = _blend(grid, frac[sel])
        bad = (~ok).nonzero().squeeze(1)
        for bi in range(b):  # tiles whose centres spread too far: one window at a time
            sel = bad[tile_batch[bad] == bi]
            if len(sel):
                n = len(sel) * t * t
                res = self._direct_lookup(rows[bi : bi + 1], shape, p[sel].reshape(1, n, 2), q[sel].reshape(1, n, c))
                out[sel] = res.view(len(sel), t * t, k)
        out = out.view(b, nty, ntx, t, t, k).permute(0, 1, 3, 2, 4, 5).reshape(b, nty * t, ntx * t, k)
        return out[:, :h, :w]

    def __call__(self, coords: torch.Tensor) -> torch.Tensor:
        """Look up windows around ``coords`` ``[B, 2, H, W]``; returns ``[B, L·(2r+1)², H, W]``."""
        b, _, h, w = coords.shape
        k = (2 * self.radius + 1) ** 2
        centre = coords.permute(0, 2, 3, 1).reshape(b, h * w, 2)
        offsets = window_offsets(self.radius, device=coords.device, dtype=coords.dtype)
        out = []
        for level, data in enumerate(self.levels):
            pts = centre / 2**level
            if level < self.direct:
                grid_pts, grid_f1 = pts.view(b, h, w, 2), self.f1_rows.view(b, h, w, -1)
                out.append(self._tiled_lookup(data, self.shapes[level], grid_pts, grid_f1))
            else:
                out.append(_lookup_volume(data, pts.reshape(b * h * w, 1, 1, 2), offsets).view(b, h, w, k))
        return torch.cat(out, dim=-1).permute(0, 3, 1, 2).contiguous()


def _channels(fmap: Features) -> int:
    return sum(f.shape[1] for f in _parts(fmap))


def build_corr(
    fmap1: Features,
    fmap2: Features,
    *,
    mode: str = "auto",
    num_levels: int = 4,
    radius: int = 4,
    norm: float | torch.Tensor | None = None,
    pyramid: str = "volume",
):
    """``mode``: ``"all-pairs"``, ``"windowed"``, ``"lean"`` or ``"auto"`` (all-pairs unless the volume would be too
    large, then lean);
    ``pyramid``: ``"volume"`` (RAFT) or ``"features"`` (SEA-RAFT); ``norm``: the divisor (default sqrt(C))."""
    if mode not in CORR_MODES:
        raise ValueError(f"corr mode must be one of {CORR_MODES}, got {mode!r}")
    if mode == "auto":
        b, _, h, w = _parts(fmap1)[0].shape
        entries = b * (h * w) ** 2
        limit = AUTO_ALL_PAIRS_MAX_ENTRIES
        first = _parts(fmap1)[0]
        if first.is_cuda:  # on a GPU the volume is 5-8x faster (BENCHMARKS.md): use it while it fits easily
            free, _ = torch.cuda.mem_get_info(first.device)
            limit = max(limit, free // 16)  # 4 B per entry, ×4/3 for the pyramid: within a third of the free memory
        mode = "all-pairs" if entries <= limit else "lean"
    cls = {"all-pairs": AllPairsCorr, "windowed": WindowedCorr, "lean": LeanCorr}[mode]
    return cls(fmap1, fmap2, num_levels=num_levels, radius=radius, norm=norm, pyramid=pyramid)
