"""Cox proportional hazards regression (Efron or Breslow ties, strata, start/stop data).

Partial likelihood maximised by Newton-Raphson with step halving (as R ``coxph.fit``),
vectorised for national-scale data:

- rows are sorted once by (stratum, time, events first) and collapsed into runs of tied
  rows; per iteration the run sums of w = exp(x'b) and w x (chunked ``np.add.reduceat``) are
  reverse-cumulated within strata to give the risk-set sums R0, R1 at each event time, and
  the event run gives the tied events' sums E0, E1;
- Efron (1977) ties: at a time with d tied events the l-th term (l = 0..d-1) uses
  den_l = R0 - (l/d) E0. Score and information reduce to per-time scalars a = sum 1/den,
  b = sum f/den, c0..c2 = sum f^k/den^2 (f = l/d); Breslow is the case f = 0;
- the second-moment part sum_j a_j R2_j (R2 = risk-set sum of w x x') is one weighted Gram
  matrix sum_i w_i A(t_i) x_i x_i', A(t) = cumulative a over event times <= t: no per-time
  p x p sums are formed. Cost O(n p^2) per iteration, in small BLAS products that stay
  single-threaded (robust when cores are oversubscribed);
- counting-process (start, stop] data: risk sets are {start < t <= stop} (R, lifelines
  convention), i.e. sums over stop >= t minus sums over start >= t.

Matches R ``coxph`` (likelihood, coefficients, SEs, LR/Wald/score tests), statsmodels
``PHReg`` and lifelines ``CoxPHFitter`` / ``CoxTimeVaryingFitter``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np
import pandas as pd
from scipy import stats

from ._common import as_duration, as_event, chisq_sf, order_codes_time, require_columns, strata_codes, z_value
from .concordance import Concordance, concordance_index

TIES = ("efron", "breslow")


# ----------------------------------------------------------------------------------------------
# Block sums


def _grouped_moments(X: np.ndarray, w: np.ndarray, group: np.ndarray, ng: int):
    """Sums of w and w x by row group (any row order): (s0 (ng,), s1 (p, ng)), one column at a time.

    Used for the counting-process entry sums, so no entry-ordered copy of ``X`` is needed.
    """
    s0 = np.bincount(group, weights=w, minlength=ng)
    s1 = np.empty((X.shape[1], ng))
    wx = np.empty(X.shape[0])
    for i in range(X.shape[1]):
        np.multiply(w, X[:, i], out=wx)
        s1[i] = np.bincount(group, weights=wx, minlength=ng)
    return s0, s1


def _block_moments(X: np.ndarray, w: np.ndarray, starts: np.ndarray, chunk_rows: int = 1 << 18):
    """Sums of w and w x over row blocks starting at ``starts``: (s0 (nb,), s1 (p, nb)).

    ``X`` should be column-major (Fortran order) so each covariate is contiguous; rows are
    processed in chunks so temporaries stay small.
    """
    n, p = X.shape
    nb = starts.size
    s0 = np.zeros(nb)
    s1 = np.zeros((p, nb))
    if n == 0:
        return s0, s1
    wx = np.empty(min(n, chunk_rows))
    for a in range(0, n, chunk_rows):
        b = min(n, a + chunk_rows)
        first = int(np.searchsorted(starts, a, side="right")) - 1
        last = int(np.searchsorted(starts, b, side="left"))
        loc = starts[first:last] - a
        loc[0] = 0
        wc = w[a:b]
        s0[first:last] += np.add.reduceat(wc, loc)
        buf = wx[: b - a]
        for i in range(p):
            np.multiply(wc, X[a:b, i], out=buf)
            s1[i, first:last] += np.add.reduceat(buf, loc)
    return s0, s1


# OpenBLAS runs a GEMM single-threaded when m * n * k <= 262144. Splitting large products into
# such pieces keeps the cost the same on an idle machine and avoids the severe slow-down of
# threaded BLAS when cores are oversubscribed (parallel jobs, pytest-xdist).
_SINGLE_THREAD_GEMM = 262144


def _matmul_inner_chunked(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """A @ B for A (p, m), B (m, q), as a sum of small products over chunks of m."""
    p, m = A.shape
    q = B.shape[1]
    step = max(64, _SINGLE_THREAD_GEMM // max(1, p * q))
    out = np.zeros((p, q))
    for a in range(0, m, step):
        out += A[:, a : a + step] @ B[a : a + step]
    return out


def weighted_gram(X: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """X' diag(weights) X, as a sum of small BLAS products over row chunks."""
    n, p = X.shape
    step = max(256, _SINGLE_THREAD_GEMM // max(1, p * p))
    out = np.zeros((p, p))
    for a in range(0, n, step):
        Xc = X[a : a + step]
        out += Xc.T @ (Xc * weights[a : a + step, None])
    return (out + out.T) / 2.0


def _cumsum_within(a: np.ndarray, seg_starts: np.ndarray) -> np.ndarray:
    """Cumulative sum along the last axis, restarting in each segment."""
    out = np.empty_like(a)
    ends = np.append(seg_starts[1:], a.shape[-1])
    for s, e in zip(seg_starts, ends):
        out[..., s:e] = np.cumsum(a[..., s:e], axis=-1)
    return out


def _reverse_cumsum_within(a: np.ndarray, seg_starts: np.ndarray) -> np.ndarray:
    """Reverse cumulative sum along the last axis, restarting in each segment (segments = strata)."""
    out = np.empty_like(a)
    ends = np.append(seg_starts[1:], a.shape[-1])
    for s, e in zip(seg_starts, ends):
        out[..., s:e] = np.cumsum(a[..., s:e][..., ::-1], axis=-1)[..., ::-1]
    return out


def _true_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of each run of True in a boolean array."""
    edges = np.flatnonzero(np.diff(np.r_[False, mask, False].astype(np.int8)))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def _dense_rank(x: np.ndarray) -> tuple[np.ndarray, int]:
    """Dense 0-based ranks of x and the number of distinct values."""
    if x.size == 0:
        return np.zeros(0, dtype=np.int64), 0
    o = np.argsort(x, kind="quicksort")
    xs = x[o]
    r = np.empty(x.size, dtype=np.int64)
    r[o] = np.concatenate([[0], np.cumsum(xs[1:] != xs[:-1])])
    return r, int(r[o[-1]]) + 1


def _sort_stratum_time_event(codes: np.ndarray, time: np.ndarray, event: np.ndarray) -> np.ndarray:
    """Row order by stratum, then time, then events before censorings (one integer sort)."""
    trank, k = _dense_rank(time)
    key = (codes.astype(np.int64) * k + trank) * 2 + (event <= 0)
    return np.argsort(key, kind="quicksort")


# ----------------------------------------------------------------------------------------------
# The partial likelihood on sorted data


@dataclass
class _Derivatives:
    loglik: float
    score: np.ndarray
    information: np.ndarray | None
    w: np.ndarray  # exp(x'b - shift) per sorted row
    # per event-time Efron scalars and sums (for residuals and PH tests)
    a: np.ndarray
    b: np.ndarray
    c0: np.ndarray | None
    c1: np.ndarray | None
    c2: np.ndarray | None
    R1: np.ndarray  # (p, m) risk-set sums of w x at the m event times
    E1: np.ndarray  # (p, m) sums of w x over the tied events


class CoxProblem:
    """Sorted design for the Cox partial likelihood; evaluates log-likelihood, score and information.

    Rows are ordered by (stratum, time, event first). A "sub-block" is a run of rows with the
    same stratum, time and event status, so one pass of block sums gives both the risk-set
    sums (reverse cumulative over sub-blocks) and the tied events' sums (the event sub-block).

    The second-moment part of the information, sum_j a_j R2_j with R2_j the risk-set sum of
    w x x', is computed without per-time p x p sums: it equals sum_i w_i A(t_i) x_i x_i' with
    A(t) the cumulative sum of a_j over event times t_j <= t in the row's stratum (minus
    A(start_i) for counting-process rows), i.e. one weighted Gram matrix (BLAS).

    Memory: the problem holds one sorted, centred copy of ``X`` (with ``overwrite_X=True`` and a
    Fortran-order float64 ``X``, the caller's array itself); counting-process entry sums are
    grouped sums over that copy, not a second, entry-ordered one.
    """

    def __init__(self, X, time, event, strata=None, entry=None, ties: str = "efron", weights=None,
                 overwrite_X: bool = False):
        if ties not in TIES:
            raise ValueError(f"ties must be one of {TIES}, got {ties!r}")
        X = np.asarray(X, dtype=np.float64)
        if X.ndim == 1:
            X = X[:, None]
        n, p = X.shape
        # overwrite_X (as in scipy.linalg): sort and centre the caller's Fortran-order array in place,
        # so a national design (millions of rows x ~130 covariates) is held once, not twice
        in_place = overwrite_X and X.flags.f_contiguous and X.flags.writeable
        time = np.asarray(time, dtype=np.float64)
        event = np.asarray(event, dtype=np.float64)
        codes = np.zeros(n, dtype=np.int64) if strata is None else np.asarray(strata, dtype=np.int64)
        self.ties = ties
        order = _sort_stratum_time_event(codes, time, event)
        self.order = order
        means = X.mean(axis=0) if n else np.zeros(p)
        Xs = X if in_place else np.empty((n, p), order="F")
        for i in range(p):
            Xs[:, i] = X[order, i] - means[i]  # X[order, i] is a copy: safe when Xs is X
        self._set_sorted(Xs, means, time[order], event[order], codes[order],
                         None if entry is None else np.asarray(entry, dtype=np.float64)[order],
                         None if weights is None else np.asarray(weights, dtype=np.float64)[order])

    def _set_sorted(self, Xs: np.ndarray, means: np.ndarray, time: np.ndarray, event: np.ndarray,
                    codes: np.ndarray, entry: np.ndarray | None, weights: np.ndarray | None) -> None:
        """Index the sorted, centred data: runs of tied rows, event times, Efron fractions, entry and weights."""
        n, p = Xs.shape
        self.n, self.p = n, p
        self.means = means
        self.X = Xs
        self.time = time
        self.event = event
        self.codes = codes
        ev = self.event > 0
        same_block = np.zeros(n, dtype=bool)
        if n:
            same_block[1:] = (self.time[1:] == self.time[:-1]) & (self.codes[1:] == self.codes[:-1])
        sub_change = ~same_block
        sub_change[1:] |= ev[1:] != ev[:-1]
        self.sub_starts = np.flatnonzero(sub_change)
        nsub = self.sub_starts.size
        sub_code = self.codes[self.sub_starts]
        self.sub_seg_starts = np.flatnonzero(np.r_[True, sub_code[1:] != sub_code[:-1]]) if n else np.zeros(0, int)
        # event sub-blocks: one per distinct (stratum, event time), the first sub-block of its block
        is_ev_sub = ev[self.sub_starts] if n else np.zeros(0, bool)
        self.ev_sub = np.flatnonzero(is_ev_sub)
        sub_len = np.diff(np.append(self.sub_starts, n))
        self.d = sub_len[self.ev_sub].astype(np.float64)
        self.event_time = self.time[self.sub_starts[self.ev_sub]]
        self.event_code = self.codes[self.sub_starts[self.ev_sub]]
        self.ev_seg_starts = np.flatnonzero(np.r_[True, self.event_code[1:] != self.event_code[:-1]]) if self.ev_sub.size else np.zeros(0, int)
        self.n_events = int(self.d.sum())
        self.ev_rows = np.flatnonzero(ev)
        self.X_ev = np.asfortranarray(self.X[self.ev_rows])
        self.block_of_event = np.repeat(np.arange(self.d.size), self.d.astype(np.int64))
        # last event time <= each row's time, in the row's stratum (-1 if none)
        last = np.cumsum(is_ev_sub) - 1
        valid = last >= 0
        valid[valid] &= self.event_code[last[valid]] == sub_code[valid]
        self.row_last_event = np.repeat(np.where(valid, last, -1), sub_len)
        self.sum_x_block = np.add.reduceat(self.X_ev, np.flatnonzero(np.r_[True, np.diff(self.block_of_event) != 0]), axis=0).T if self.ev_rows.size else np.zeros((p, 0))
        self.sum_x_events = self.sum_x_block.sum(axis=1)
        self._setup_efron()
        self.entry = None
        if entry is not None:
            self._setup_entry(entry)
        self.risk_weights = None
        if weights is not None:
            self._setup_weights(weights)

    def without_strata(self, strata_codes, buffer: np.ndarray | None = None) -> "CoxProblem":
        """The same problem without the rows of the strata ``strata_codes``, built from the sorted data (no re-sort).

        For leave-one-stratum-out fits (e.g. leave one site out): rows keep their sorted order and the
        centring of the whole problem (the partial likelihood does not depend on it); ``order`` is None.
        Rows are sorted by stratum, so the kept rows are a few contiguous runs, copied as blocks. ``buffer``:
        a float64 array of at least (kept rows x p) elements to hold the design (reused across refits, so
        each refit does not fault in fresh memory); the returned problem's design is a view of it.
        """
        keep = ~np.isin(self.codes, np.asarray(strata_codes, dtype=np.int64))
        m = int(keep.sum())
        Xs = (np.empty((m, self.p), order="F") if buffer is None
              else buffer.reshape(-1)[: m * self.p].reshape((m, self.p), order="F"))
        at = 0
        for a, b in _true_runs(keep):
            Xs[at : at + b - a] = self.X[a:b]
            at += b - a
        sub = object.__new__(CoxProblem)
        sub.ties, sub.order = self.ties, None
        sub._set_sorted(Xs, self.means, self.time[keep], self.event[keep], self.codes[keep],
                        None if self.entry is None else self.entry[keep],
                        None if self.risk_weights is None else self.risk_weights[keep])
        return sub

    def _setup_weights(self, weights: np.ndarray) -> None:
        """Risk-set weights (IPCW, e.g. Fine-Gray): each row's exp(x'b) counts ``weight`` times in risk sets.

        Rows with an event must have weight 1 (as in Fine-Gray's weighted data, where only people
        kept at risk after a competing event are down-weighted); general case weights are not supported.
        """
        if not np.all(np.isfinite(weights)) or np.any(weights < 0):
            raise ValueError("risk-set weights must be finite and non-negative")
        if np.any(weights[self.event > 0] != 1.0):
            raise ValueError("risk-set weights of rows with an event must be 1 "
                             "(only IPCW risk-set weights are supported)")
        self.risk_weights = weights

    def _setup_efron(self) -> None:
        """Index each tied event at each event time with its Efron fraction f = l / d."""
        d = self.d.astype(np.int64)
        self.rep = self.block_of_event
        offsets = np.concatenate([[0], np.cumsum(d)[:-1]]) if d.size else np.zeros(0, np.int64)
        l = np.arange(self.rep.size) - offsets[self.rep]
        self.frac = (l / d[self.rep]) if self.ties == "efron" else np.zeros(self.rep.size)

    def _setup_entry(self, entry: np.ndarray) -> None:
        """Counting-process rows: index the rows not yet entered (start >= t) at each event time."""
        if np.any(entry >= self.time):
            raise ValueError("entry (start) time must be strictly less than the stop time")
        self.entry = entry
        e_order = order_codes_time(self.codes, entry)
        self.e_order = e_order
        e_time, e_code = entry[e_order], self.codes[e_order]
        change = np.r_[True, (e_time[1:] != e_time[:-1]) | (e_code[1:] != e_code[:-1])]
        self.e_starts = np.flatnonzero(change)
        self.entry_block = np.empty(self.n, dtype=np.int64)  # each sorted row's entry block
        self.entry_block[e_order] = np.cumsum(change) - 1
        eb_time, eb_code = e_time[self.e_starts], e_code[self.e_starts]
        self.e_seg_starts = np.flatnonzero(np.r_[True, eb_code[1:] != eb_code[:-1]])
        # for each event time: first entry block in the same stratum with entry >= t (or -1)
        idx = np.full(self.event_time.size, -1, dtype=np.int64)
        seg_ends = np.append(self.e_seg_starts[1:], eb_time.size)
        for s, e in zip(self.e_seg_starts, seg_ends):
            mask = self.event_code == eb_code[s]
            if mask.any():
                j = s + np.searchsorted(eb_time[s:e], self.event_time[mask], side="left")
                idx[mask] = np.where(j < e, j, -1)
        self.entry_map = idx
        # for each row: last event time <= its entry time in its stratum (-1 if none)
        row_last = np.full(self.n, -1, dtype=np.int64)
        ev_ends = np.append(self.ev_seg_starts[1:], self.event_time.size)
        for s, e in zip(self.ev_seg_starts, ev_ends):
            rows = np.flatnonzero(self.codes == self.event_code[s])
            j = np.searchsorted(self.event_time[s:e], entry[rows], side="right") - 1
            row_last[rows] = np.where(j >= 0, s + j, -1)
        self.row_entry_last_event = row_last

    def linear_predictor(self, beta: np.ndarray) -> np.ndarray:
        """x'b on the centred covariates, in sorted row order (column-wise, no threaded BLAS)."""
        eta = np.zeros(self.n)
        for i, b in enumerate(np.asarray(beta, dtype=np.float64)):
            if b != 0.0:
                eta += b * self.X[:, i]
        return eta

    def _sums(self, w: np.ndarray, X: np.ndarray | None = None):
        """Risk-set sums (R0, R1) and tied-event sums (E0, E1) of w and w x at each event time
        (``X``: other sorted columns than the design's, e.g. a covariate not in the model)."""
        X = self.X if X is None else X
        s0, s1 = _block_moments(X, w, self.sub_starts)
        seg, ev = self.sub_seg_starts, self.ev_sub
        R0 = _reverse_cumsum_within(s0, seg)[ev]
        R1 = _reverse_cumsum_within(s1, seg)[:, ev]
        E0, E1 = s0[ev], s1[:, ev]
        if self.entry is not None:
            t0, t1 = _grouped_moments(X, w, self.entry_block, self.e_starts.size)
            has = self.entry_map >= 0
            m = self.entry_map[has]
            R0[has] -= _reverse_cumsum_within(t0, self.e_seg_starts)[m]
            R1[:, has] -= _reverse_cumsum_within(t1, self.e_seg_starts)[:, m]
        return R0, R1, E0, E1

    def evaluate(self, beta: np.ndarray, second: bool = True) -> _Derivatives:
        """Log partial likelihood, score and observed information at ``beta`` (Efron or Breslow)."""
        eta = self.linear_predictor(beta)
        shift = eta.max() if eta.size else 0.0  # cancels exactly in the partial likelihood
        w = np.exp(eta - shift)
        if self.risk_weights is not None:
            w = w * self.risk_weights
        R0, R1, E0, E1 = self._sums(w)
        rep, f = self.rep, self.frac
        den = R0[rep] - f * E0[rep]
        m = self.d.size
        inv = 1.0 / den
        a = np.bincount(rep, weights=inv, minlength=m)
        b = np.bincount(rep, weights=f * inv, minlength=m)
        loglik = float(eta[self.ev_rows].sum() - shift * self.n_events - np.log(den).sum())
        score = self.sum_x_events - (R1 @ a - E1 @ b)
        der = _Derivatives(loglik, score, None, w, a, b, None, None, None, R1, E1)
        if second:
            inv2 = inv * inv
            der.c0 = np.bincount(rep, weights=inv2, minlength=m)
            der.c1 = np.bincount(rep, weights=f * inv2, minlength=m)
            der.c2 = np.bincount(rep, weights=f * f * inv2, minlength=m)
            der.information = self.block_information(der, None)
        return der

    def block_information(self, der: _Derivatives, weights: np.ndarray | None) -> np.ndarray:
        """sum_j v_j I_j: information contributions at event times j weighted by v (None: v = 1).

        I_j = sum_l [ (R2 - f_l E2) / den_l - (R1 - f_l E1)(R1 - f_l E1)' / den_l^2 ], with the
        R2 part as one weighted Gram matrix over rows and the E2 part over event rows.
        """
        v = np.ones(self.d.size) if weights is None else np.asarray(weights, dtype=np.float64)
        a, b = v * der.a, v * der.b
        c0, c1, c2 = v * der.c0, v * der.c1, v * der.c2
        A = np.concatenate([[0.0], _cumsum_within(a, self.ev_seg_starts)])
        row_w = der.w * A[self.row_last_event + 1]
        if self.entry is not None:
            row_w = row_w - der.w * A[self.row_entry_last_event + 1]
        second_moment = weighted_gram(self.X, row_w)
        second_moment -= weighted_gram(self.X_ev, der.w[self.ev_rows] * b[self.block_of_event])
        mm = _matmul_inner_chunked
        cross = mm(der.R1 * c1, der.E1.T)
        return second_moment - mm(der.R1 * c0, der.R1.T) + cross + cross.T - mm(der.E1 * c2, der.E1.T)

    def cross_information_by_stratum(self, der: _Derivatives, z: np.ndarray) -> np.ndarray:
        """Information between the model's covariates and a covariate ``z`` not in it, one column per stratum.

        Column g is -d2 loglik / (d beta d gamma_g) at ``der`` (gamma_g = 0) for the covariate
        ``z * [stratum == g]``: the same Efron terms as :meth:`block_information`, with the second
        moments and risk-set sums of ``w x z`` in place of ``w x x'``. Risk sets lie within a
        stratum, so stratum g's column sums only its own event times. ``z``: one value per row in the
        caller's (unsorted) order. Returns (p, strata); used for the omitted-covariate sensitivity
        ``V @ C`` of the coefficients (e.g. to a site-specific drift).
        """
        zs = np.asarray(z, dtype=np.float64)
        zs = zs[self.order] if self.order is not None else zs
        zs = (zs - zs.mean())[:, None] if zs.size else zs[:, None]  # centred, as X (the terms are shift-free)
        _, Rz, _, Ez = self._sums(der.w, np.asfortranarray(zs))
        Rz, Ez = Rz[0], Ez[0]
        n_strata = int(self.codes.max()) + 1 if self.n else 0
        # second moments: sum_i w_i (A(t_i) - A(entry_i)) x_i z_i - sum_events w b x z, by stratum
        A = np.concatenate([[0.0], _cumsum_within(der.a, self.ev_seg_starts)])
        row_w = der.w * A[self.row_last_event + 1]
        if self.entry is not None:
            row_w = row_w - der.w * A[self.row_entry_last_event + 1]
        row_w = row_w * zs[:, 0]
        out = np.zeros((self.p, n_strata))
        bounds = np.flatnonzero(np.r_[True, self.codes[1:] != self.codes[:-1], True]) if self.n else np.zeros(1, int)
        for a, b in zip(bounds[:-1], bounds[1:]):
            out[:, self.codes[a]] += self.X[a:b].T @ row_w[a:b]
        ev_w = der.w[self.ev_rows] * der.b[self.block_of_event] * zs[self.ev_rows, 0]
        np.add.at(out.T, self.codes[self.ev_rows], -(self.X_ev * ev_w[:, None]))
        # products of risk-set and event sums at each event time, by the event time's stratum
        per_event = (der.R1 * (der.c1 * Ez - der.c0 * Rz) + der.E1 * (der.c1 * Rz - der.c2 * Ez))
        np.add.at(out.T, self.event_code, per_event.T)
        return out

    def event_means(self, der: _Derivatives) -> np.ndarray:
        """Efron-averaged risk-set mean of x at each event time, (m, p), centred scale."""
        return ((der.R1 * der.a - der.E1 * der.b) / self.d).T

    def schoenfeld_sums(self, der: _Derivatives) -> np.ndarray:
        """Sum of Schoenfeld residuals over the tied events at each event time, (m, p)."""
        return (self.sum_x_block - (der.R1 * der.a - der.E1 * der.b)).T


@dataclass
class _Fit:
    beta: np.ndarray
    derivatives: _Derivatives
    null: _Derivatives | None  # at beta = 0 (None: skipped, ``null_tests=False`` from a start)
    iterations: int
    converged: bool


def _improves(new_loglik: float, old_loglik: float) -> bool:
    """A Newton step is accepted when its log-likelihood is finite and not lower (to rounding)."""
    return bool(np.isfinite(new_loglik)) and new_loglik >= old_loglik - 1e-10 * abs(old_loglik)


def _newton_raphson(problem: CoxProblem, max_iter: int = 50, tol: float = 1e-12, init=None,
                    null_tests: bool = True) -> _Fit:
    """Maximise the partial likelihood by Newton-Raphson with step halving (as R coxph.fit), from ``init``
    (default zero). The null model (beta = 0) is evaluated for the global tests; with ``null_tests=False``
    and a start ``init``, that pass over the data is skipped (``null`` is then None).

    Converged when the last step changed the log-likelihood by at most ``tol`` (relative) and the next
    Newton step is below 1e-7 in every coefficient. That next step is not taken: it would cost a pass over
    the data and move no estimate by 1e-7 (in Newton's quadratic phase it is usually below 1e-12), and the
    estimates, log-likelihood and information all stay at the same point."""
    zero = np.zeros(problem.p)
    null = problem.evaluate(zero) if init is None or null_tests else None
    if init is None:
        beta, der = zero, null
    else:
        beta = np.asarray(init, dtype=np.float64).copy()
        with np.errstate(all="ignore"):  # a start far out may overflow: checked just below
            der = problem.evaluate(beta)
    if not (np.isfinite(der.loglik) and np.all(np.isfinite(der.information))):  # start from zero instead
        null = problem.evaluate(zero) if null is None else null
        beta, der = zero, null
    converged = False
    change = np.inf  # change of the log-likelihood made by the last step taken
    it = 0
    while True:
        try:
            step = np.linalg.solve(der.information, der.score)
        except np.linalg.LinAlgError as exc:
            raise ValueError("information matrix is singular: covariates are collinear or constant") from exc
        if change <= tol * max(1.0, abs(der.loglik)) and np.max(np.abs(step)) < 1e-7:
            converged = True  # the last step left the log-likelihood unchanged and the next one is negligible
            break
        if it == max_iter:
            break
        it += 1
        new = problem.evaluate(beta + step)
        halvings = 0
        while not _improves(new.loglik, der.loglik):
            step = step / 2.0
            halvings += 1
            if halvings > 40:
                break
            new = problem.evaluate(beta + step)
        if not _improves(new.loglik, der.loglik):
            # no step along Newton's direction keeps the log-likelihood finite and not lower: stop at the
            # last finite iterate rather than accept a step to NaN (R coxph.fit also keeps the last good one)
            converged = bool(np.all(np.isfinite(der.score)) and np.max(np.abs(step)) < 1e-7)
            break
        change = abs(new.loglik - der.loglik)
        beta = beta + step
        der = new
    if not converged:
        warnings.warn(f"Cox fit did not converge in {max_iter} iterations", RuntimeWarning, stacklevel=3)
    if np.any(np.abs(beta) > 25):
        warnings.warn("some coefficients are very large: the partial likelihood may be monotone (infinite estimate)", RuntimeWarning, stacklevel=3)
    return _Fit(beta, der, null, it, converged)


# ----------------------------------------------------------------------------------------------
# Public interface


@dataclass(frozen=True)
class ChiSquareTest:
    """A chi-square test: statistic, degrees of freedom and p-value."""

    statistic: float
    df: int
    p: float


@dataclass
class CoxResult:
    """Fitted Cox model.

    ``table``: term, coef, se, z, p, hr, hr_lower, hr_upper. ``variance``: covariance matrix of the
    coefficients (inverse observed information). ``lr_test``, ``wald_test``, ``score_test``: global
    tests as R ``summary.coxph`` (with Breslow ties and no tied event times the score test is the
    log-rank test). ``concordance``: Harrell's C (R convention), computed on first access (it
    is O(n log n) but takes a few seconds at a million rows, so it is not part of the fit).
    """

    table: pd.DataFrame
    variance: pd.DataFrame
    n: int
    events: int
    log_likelihood: float
    log_likelihood_null: float
    lr_test: ChiSquareTest
    wald_test: ChiSquareTest
    score_test: ChiSquareTest
    ties: str
    strata: list | None
    covariates: list[str]
    n_dropped: int
    iterations: int
    converged: bool
    conf: float
    problem: CoxProblem | None = field(repr=False)
    derivatives: _Derivatives | None = field(repr=False)

    def without_design(self) -> "CoxResult":
        """The fit without its sorted design and derivative arrays (coefficients, variance and tests kept).

        For large models held after fitting (a national calendar-time design is ~3 GB): concordance,
        residuals and proportional-hazards tests need the design and are unavailable on the result.
        """
        return replace(self, problem=None, derivatives=None)

    def design(self, needed_for: str) -> tuple[CoxProblem, _Derivatives]:
        """The sorted design and derivatives at the fit (a clear error when :meth:`without_design` dropped them)."""
        if self.problem is None or self.derivatives is None:
            raise ValueError(f"{needed_for} needs the model's design, which this result dropped (without_design)")
        return self.problem, self.derivatives

    def stratum_scores(self) -> np.ndarray:
        """Each stratum's contribution to the score at the fit, (strata, p): the sum of its Schoenfeld residuals
        (the sum of its rows' score residuals, as R ``residuals(fit, "score")`` summed within the stratum)."""
        pr, der = self.design("stratum scores")
        per_event = pr.schoenfeld_sums(der)
        n_strata = int(pr.codes.max()) + 1 if pr.n else 0
        out = np.zeros((n_strata, pr.p))
        np.add.at(out, pr.event_code, per_event)
        return out

    def robust_variance_by_stratum(self) -> pd.DataFrame:
        """Sandwich variance with the strata as clusters: V U'U V, V the model variance and U the strata's score
        contributions (Lin and Wei 1989). Equals R ``coxph(... + strata(g) + cluster(g))``'s robust variance
        (no small-sample factor); with G strata, the usual correction is G / (G - 1) and t on G - 1 df."""
        u = self.stratum_scores()
        v = self.variance.to_numpy()
        robust = v @ (u.T @ u) @ v
        return pd.DataFrame((robust + robust.T) / 2.0, index=self.covariates, columns=self.covariates)

    @property
    def coef(self) -> pd.Series:
        return self.table.set_index("term")["coef"]

    @property
    def hazard_ratios(self) -> pd.Series:
        return self.table.set_index("term")["hr"]

    @cached_property
    def concordance_detail(self) -> Concordance:
        """Concordance with its pair counts (within strata)."""
        pr, _ = self.design("concordance")
        return concordance_index(pr.time, pr.event, pr.linear_predictor(self.coef.to_numpy()), pr.codes)

    @property
    def concordance(self) -> float:
        return self.concordance_detail.concordance

    def linear_predictor(self, df: pd.DataFrame) -> np.ndarray:
        """x'b for new data (covariates uncentred)."""
        return df[self.covariates].to_numpy(dtype=np.float64) @ self.coef.to_numpy()


def _coef_table(terms, beta, var, conf) -> pd.DataFrame:
    se = np.sqrt(np.diag(var))
    z = beta / se
    zc = z_value(conf)
    return pd.DataFrame(
        {
            "term": list(terms),
            "coef": beta,
            "se": se,
            "z": z,
            "p": 2.0 * stats.norm.sf(np.abs(z)),
            "hr": np.exp(beta),
            "hr_lower": np.exp(beta - zc * se),
            "hr_upper": np.exp(beta + zc * se),
        }
    )


def numeric_design(df: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """``df[columns]`` as one float64 (rows x columns) Fortran-order array, missing values NaN.

    Numeric and boolean columns (NumPy or pandas nullable) are copied in directly; any other column is
    parsed with ``pd.to_numeric(errors="raise")`` first, so a non-numeric value still raises. (Equal to
    ``df[columns].apply(pd.to_numeric).to_numpy(float)``, without a parsed copy of every column: that
    took 2.6 s of a 2.5-second Cox fit at national size.)
    """
    X = np.empty((len(df), len(columns)), dtype=np.float64, order="F")
    for j, name in enumerate(columns):
        col = df[name]
        if not (pd.api.types.is_numeric_dtype(col.dtype) or pd.api.types.is_bool_dtype(col.dtype)):
            col = pd.to_numeric(col, errors="raise")
        X[:, j] = col.to_numpy(dtype=np.float64, na_value=np.nan)
    return X


def cox(
    df: pd.DataFrame,
    duration_col: str,
    event_col: str,
    covariates: list[str],
    strata: str | list[str] | None = None,
    ties: str = "efron",
    entry_col: str | None = None,
    conf: float = 0.95,
    max_iter: int = 50,
    weights_col: str | None = None,
    init=None,
    null_tests: bool = True,
) -> CoxResult:
    """Fit a Cox proportional hazards model by Newton-Raphson on the partial likelihood.

    ``covariates`` are numeric columns (build dummies with :func:`treatment_dummies`).
    ``strata``: column(s) giving separate baseline hazards (stratified Cox). ``ties``: "efron"
    (R default) or "breslow". ``entry_col``: start time for counting-process (start, stop] rows
    (left truncation, time-split data). ``weights_col``: risk-set weights (IPCW, as Fine-Gray's weighted
    counting-process data; event rows must have weight 1); the variance is then the model-based inverse
    information of the weighted partial likelihood (R ``coxph(..., robust = FALSE)``). Rows with any
    missing value in the used columns are dropped (complete case; the count is in ``n_dropped``). Standard errors from the inverse
    observed information; Wald CIs for hazard ratios. ``init``: starting coefficients, in ``covariates``' order;
    ``null_tests``: see :func:`fit_problem`.
    """
    covariates = list(covariates)
    if not covariates:
        raise ValueError("at least one covariate is required")
    strata_cols = [] if strata is None else ([strata] if isinstance(strata, str) else list(strata))
    require_columns(df, [duration_col, event_col, entry_col, weights_col, *covariates, *strata_cols])
    X = numeric_design(df, covariates)
    time = as_duration(df[duration_col], duration_col)
    event = as_event(df[event_col], event_col)
    codes, levels = strata_codes(df, strata)
    entry = as_duration(df[entry_col], entry_col) if entry_col else None
    keep = ~np.isnan(time) & ~np.isnan(event) & ~np.isnan(X).any(axis=1) & (codes >= 0)
    if entry is not None:
        keep &= ~np.isnan(entry)
    weights = df[weights_col].to_numpy(dtype=np.float64) if weights_col else None
    if weights is not None:
        keep &= ~np.isnan(weights)
    n_dropped = int((~keep).sum())
    if n_dropped:
        X = np.asfortranarray(X[keep])
    problem = CoxProblem(
        X, time[keep], event[keep], codes[keep], None if entry is None else entry[keep], ties,
        None if weights is None else weights[keep], overwrite_X=True,  # X is this function's own copy
    )
    return fit_problem(problem, covariates, conf=conf, max_iter=max_iter, n_dropped=n_dropped,
                       strata=None if strata is None else levels, init=init, null_tests=null_tests)


def fit_problem(problem: CoxProblem, covariates: list[str], conf: float = 0.95, max_iter: int = 50,
                n_dropped: int = 0, strata: list | None = None, init=None,
                null_tests: bool = True) -> CoxResult:
    """Fit a Cox model to an already-built :class:`CoxProblem` (for callers that build the design as one
    float64 array, e.g. large counting-process designs, and want no DataFrame copies of it).

    ``init``: starting coefficients (R ``coxph(init=)``), e.g. a fit to nearly the same data: fewer Newton
    steps to the same maximum (same convergence criterion). ``null_tests=False``: the caller needs no global
    likelihood-ratio or score test (both NaN, as is the null log-likelihood), so a fit from ``init`` makes no
    pass over the data at beta = 0 (one Newton step's cost; e.g. leave-one-site-out refits)."""
    if problem.n_events == 0:
        raise ValueError("no events: the Cox model is not estimable")
    fit = _newton_raphson(problem, max_iter=max_iter, init=init, null_tests=null_tests)
    der = fit.derivatives
    var = np.linalg.inv(der.information)
    var = (var + var.T) / 2.0
    p = problem.p
    wald = float(fit.beta @ der.information @ fit.beta)
    null = fit.null if null_tests else None  # None: the caller asked for no global tests
    loglik_null = float("nan") if null is None else null.loglik
    lr = 2.0 * (der.loglik - loglik_null)
    score = float("nan") if null is None else float(null.score @ np.linalg.solve(null.information, null.score))
    return CoxResult(
        table=_coef_table(covariates, fit.beta, var, conf),
        variance=pd.DataFrame(var, index=covariates, columns=covariates),
        n=problem.n,
        events=problem.n_events,
        log_likelihood=der.loglik,
        log_likelihood_null=loglik_null,
        lr_test=ChiSquareTest(lr, p, chisq_sf(lr, p)),
        wald_test=ChiSquareTest(wald, p, chisq_sf(wald, p)),
        score_test=ChiSquareTest(score, p, chisq_sf(score, p)),
        ties=problem.ties,
        strata=strata,
        covariates=covariates,
        n_dropped=n_dropped,
        iterations=fit.iterations,
        converged=fit.converged,
        conf=conf,
        problem=problem,
        derivatives=der,
    )


def treatment_dummies(
    df: pd.DataFrame,
    column: str,
    reference,
    prefix: str | None = None,
    levels: list | None = None,
) -> pd.DataFrame:
    """Treatment-coded 0/1 indicator columns for a categorical column, omitting ``reference``.

    Columns are named ``f"{prefix}{level}"`` (default prefix ``f"{column}="``) in level order
    (``levels`` if given, else categorical order or sorted values). Rows where ``column`` is
    missing get NaN in every indicator, so a Cox fit drops them unless an explicit "missing"
    level is created first.
    """
    require_columns(df, [column])
    values = df[column]
    if levels is None:
        from ._common import group_levels

        levels = group_levels(values)
    levels = list(levels)
    if reference not in levels:
        raise ValueError(f"reference level {reference!r} not found in {column!r} (levels: {levels})")
    unknown = set(pd.unique(values.dropna())) - set(levels)
    if unknown:
        raise ValueError(f"values of {column!r} not in levels: {sorted(map(str, unknown))}")
    prefix = f"{column}=" if prefix is None else prefix
    missing = values.isna().to_numpy()
    out = {}
    for level in levels:
        if level == reference:
            continue
        col = (values == level).to_numpy(dtype=np.float64)
        col[missing] = np.nan
        out[f"{prefix}{level}"] = col
    return pd.DataFrame(out, index=df.index)
