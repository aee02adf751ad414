"""The BiLSTM next-item model: its config dataclass and the ``nn.Module``.

A prefix of item indices (0 = padding) goes through an ``Embedding`` (optionally
initialised from item2vec vectors), an optional linear projection, a
bidirectional LSTM over the packed, variable-length prefix, a pooling step that
turns the LSTM states into one session vector, and a dot product with an output
item table (the input table itself when ``tied``) plus a per-item bias: one score
per catalogue item.

Shapes: ``B`` batch, ``T`` longest prefix in the batch, ``d`` embedding size,
``h`` LSTM hidden size, ``n`` catalogue size (indices ``1..n``; row 0 is padding).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from item2vec._config import DictConfig

__all__ = ["NextItemConfig", "NextItemModel", "pretrained_table"]

Pooling = Literal["last", "mean", "attention"]


@dataclass
class NextItemConfig(DictConfig):
    """Architecture of :class:`NextItemModel`; round-trips to a flat dict.

    Attributes
    ----------
    n_items : int, optional
        Catalogue size; the tables have ``n_items + 1`` rows (row 0 is padding).
        ``None`` until known (a recommender's config before :meth:`fit`); the model needs it.
    embedding_dim : int
        Width of the item table (the item2vec vector size when initialised from it).
    hidden_size : int
        LSTM hidden size per direction.
    num_layers : int
        Stacked LSTM layers.
    projection_dim : int, optional
        When set and different from ``embedding_dim``, a linear map from the item
        table to the LSTM input of this width (the "projection if sizes differ").
    pooling : {"last", "mean", "attention"}
        Session vector from the BiLSTM: ``"last"`` concatenates the final forward
        state (after the last item) and the final backward state (after reading
        back to the first item); ``"mean"`` averages the per-position outputs;
        ``"attention"`` concatenates ``"last"`` with an attention-weighted sum of
        the per-position outputs, queried by ``"last"`` (as in NARM).
    tied : bool
        Score with the input item table (``True``) or a separate output table.
    residual_last : bool
        Add the last item's vector to the session vector, so the scores start as
        (and can stay close to) the item table's similarity to the last item: with
        an item2vec-initialised tied table, the untrained model already ranks like
        item2vec's last-item neighbours.
    dropout : float
        Dropout on the item vectors, between LSTM layers and on the session vector.
    max_prefix : int
        Only the last ``max_prefix`` items of a prefix are read (training and inference).
    loss : {"full", "sampled"}
        ``"full"``: cross-entropy over the whole catalogue (exact; costs ``B x n``
        per step). ``"sampled"``: softmax over the batch's own targets plus
        ``n_negatives`` shared uniformly drawn items, with the log-frequency
        correction for in-batch sampling. Switch to ``"sampled"`` from about
        10^5 items: there the full softmax trained 5-15x slower on CPU, and at 10^6
        items it needs ~5 GB per process at batch 256 (``benchmarks/NEXTITEM.md``).
    n_negatives : int
        Extra uniform negatives for ``loss="sampled"``.
    """

    _label = "NextItemConfig option"

    # Defaults: the base of the one-at-a-time search on Diginetica, MovieLens and Online
    # Retail (benchmarks/NEXTITEM.md): a prefix cap of 20 did not do better on validation
    # MRR@20 on any of the three, nor did hidden 128 or 256 on Diginetica and MovieLens
    # (hidden 128 was +0.001 on Online Retail, one seed, at 1.6x the time).

    n_items: int | None = None
    embedding_dim: int = 64
    hidden_size: int = 64
    num_layers: int = 1
    projection_dim: int | None = None
    pooling: Pooling = "last"
    tied: bool = True
    residual_last: bool = False
    dropout: float = 0.25
    max_prefix: int = 10
    loss: Literal["full", "sampled"] = "full"
    n_negatives: int = 0

    def __post_init__(self) -> None:
        checks = {
            "n_items": self.n_items is None or self.n_items >= 1,
            "embedding_dim": self.embedding_dim >= 1,
            "hidden_size": self.hidden_size >= 1,
            "num_layers": self.num_layers >= 1,
            "max_prefix": self.max_prefix >= 1,
            "n_negatives": self.n_negatives >= 0,
            "dropout": 0.0 <= self.dropout < 1.0,
            "projection_dim": self.projection_dim is None or self.projection_dim >= 1,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError(
                f"NextItemConfig: invalid {', '.join(f'{k}={getattr(self, k)!r}' for k in bad)} "
                "(sizes must be >= 1, n_negatives >= 0, 0 <= dropout < 1)"
            )
        if self.pooling not in ("last", "mean", "attention"):
            raise ValueError(f"pooling must be 'last', 'mean' or 'attention', got {self.pooling!r}")
        if self.loss not in ("full", "sampled"):
            raise ValueError(f"loss must be 'full' or 'sampled', got {self.loss!r}")



def pretrained_table(
    vectors: np.ndarray, rows: np.ndarray, n_items: int, random_state: int = 0, standardize: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """An ``(n_items + 1, dim)`` item table from pre-trained vectors.

    Parameters
    ----------
    vectors : ndarray, shape (m, dim)
        Pre-trained vectors (e.g. ``ItemEmbeddings.vectors``).
    rows : ndarray of int, shape (n_items,)
        ``rows[i - 1]`` is the row of ``vectors`` for item index ``i``, or -1 when
        the vectors lack that item.
    n_items : int
    random_state : int
    standardize : bool
        Centre the vectors and scale them to a mean norm of 1 (cosine structure kept,
        the common offset removed), the scale the LSTM and the random init use.

    Returns
    -------
    table : ndarray, shape (n_items + 1, dim), float32
        Row 0 (padding) is zero. An item the vectors lack gets the mean vector
        plus Gaussian noise with the per-dimension spread of the known vectors, so
        it starts as a typical, not a privileged or a null, item.
    known : ndarray of bool, shape (n_items + 1,)
    """
    vectors = np.asarray(vectors, dtype=np.float32)
    if standardize:
        # skip-gram vectors share a large common direction and their scale depends on
        # the corpus; centre them and set the mean norm to 1 (the random init's norm)
        vectors = vectors - vectors.mean(axis=0)
        vectors = vectors / max(float(np.linalg.norm(vectors, axis=1).mean()), 1e-12)
    rows = np.asarray(rows, dtype=np.int64)
    if rows.shape != (n_items,):
        raise ValueError(f"rows must have shape ({n_items},), got {rows.shape}")
    dim = vectors.shape[1]
    table = np.zeros((n_items + 1, dim), dtype=np.float32)
    known = np.zeros(n_items + 1, dtype=bool)
    ok = rows >= 0
    table[1:][ok] = vectors[rows[ok]]
    known[1:] = ok
    n_missing = int((~ok).sum())
    if n_missing:
        src = vectors[rows[ok]] if ok.any() else vectors
        mean, std = src.mean(axis=0), src.std(axis=0) + 1e-6
        rng = np.random.default_rng(random_state)
        table[1:][~ok] = mean + rng.standard_normal((n_missing, dim)).astype(np.float32) * std
    return table, known


class NextItemModel(nn.Module):
    """Embedding → BiLSTM over the prefix → session vector → scores over the catalogue.

    ``forward(items, lengths, targets=None) -> (scores, loss)``, as in minGPT: the
    trainer only calls this and never looks inside.
    """

    def __init__(self, config: NextItemConfig) -> None:
        super().__init__()
        self.config = c = config
        if c.n_items is None:
            raise ValueError("NextItemModel: config.n_items is None; set the catalogue size first")
        n_rows = c.n_items + 1
        self.embedding = nn.Embedding(n_rows, c.embedding_dim, padding_idx=0)
        nn.init.normal_(self.embedding.weight, std=c.embedding_dim**-0.5)
        with torch.no_grad():
            self.embedding.weight[0].zero_()
        in_dim = c.embedding_dim
        self.input_proj: nn.Module = nn.Identity()
        if c.projection_dim is not None and c.projection_dim != c.embedding_dim:
            self.input_proj = nn.Linear(c.embedding_dim, c.projection_dim)
            in_dim = c.projection_dim
        self.drop = nn.Dropout(c.dropout)
        self.lstm = nn.LSTM(
            in_dim,
            c.hidden_size,
            num_layers=c.num_layers,
            batch_first=True,
            bidirectional=True,
            dropout=c.dropout if c.num_layers > 1 else 0.0,
        )
        state = 2 * c.hidden_size
        if c.pooling == "attention":
            self.att_q = nn.Linear(state, state, bias=False)
            self.att_k = nn.Linear(state, state, bias=False)
            self.att_v = nn.Linear(state, 1, bias=False)
            state *= 2
        self.head = nn.Linear(state, c.embedding_dim)
        self.output: nn.Embedding | None = None
        if not c.tied:
            self.output = nn.Embedding(n_rows, c.embedding_dim, padding_idx=0)
            with torch.no_grad():
                self.output.weight.copy_(self.embedding.weight)
        self.bias = nn.Parameter(torch.zeros(n_rows))
        # log item frequency in training (for the sampled loss's correction); uniform until init_bias
        self.register_buffer("log_freq", torch.full((n_rows,), -float(np.log(c.n_items))))

    # -- set-up helpers (used by the recommender that builds the model) --------------
    def load_item_table(self, table: np.ndarray | torch.Tensor, freeze: bool = False) -> None:
        """Copy an ``(n_items + 1, embedding_dim)`` table into the item embedding(s).

        ``freeze=True`` stops gradients to the input table (and so to the tied
        output table); an untied output table starts from the same vectors and
        keeps training.
        """
        t = torch.as_tensor(np.asarray(table), dtype=torch.float32)
        if tuple(t.shape) != tuple(self.embedding.weight.shape):
            raise ValueError(
                f"item table must have shape {tuple(self.embedding.weight.shape)}, got {tuple(t.shape)}"
            )
        with torch.no_grad():
            self.embedding.weight.copy_(t)
            self.embedding.weight[0].zero_()
            if self.output is not None:
                self.output.weight.copy_(self.embedding.weight)
        self.embedding.weight.requires_grad_(not freeze)

    def init_bias(self, counts: np.ndarray) -> None:
        """Start the per-item bias at log-popularity (an untrained model ranks by popularity).

        ``counts`` has shape ``(n_items + 1,)``; it also sets the item frequencies the
        sampled loss corrects for.
        """
        c = torch.as_tensor(np.asarray(counts, dtype=np.float64), dtype=torch.float32)
        if tuple(c.shape) != tuple(self.bias.shape):
            raise ValueError(f"counts must have shape {tuple(self.bias.shape)}, got {tuple(c.shape)}")
        with torch.no_grad():
            self.bias.copy_(torch.log1p(c) - torch.log1p(c).mean())
            self.log_freq.copy_(torch.log((c + 0.5) / (c + 0.5).sum()))

    # -- the forward pass --------------------------------------------------------
    def encode(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Session vectors, shape ``(B, embedding_dim)``.

        ``items``: ``(B, T)`` int64, right-padded with 0; ``lengths``: ``(B,)``, each >= 1.
        """
        x = self.drop(self.input_proj(self.embedding(items)))  # (B, T, d')
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, (h_n, _) = self.lstm(packed)
        last = torch.cat([h_n[-2], h_n[-1]], dim=1)  # (B, 2h): forward after last item, backward after first
        pooling = self.config.pooling
        if pooling == "last":
            rep = last
        else:
            states, _ = pad_packed_sequence(out, batch_first=True, total_length=items.shape[1])  # (B, T, 2h)
            mask = (items != 0).unsqueeze(-1)  # (B, T, 1)
            if pooling == "mean":
                rep = (states * mask).sum(1) / lengths.to(states.dtype).unsqueeze(1)
            else:
                e = self.att_v(torch.sigmoid(self.att_k(states) + self.att_q(last).unsqueeze(1)))  # (B, T, 1)
                e = e.masked_fill(~mask, float("-inf"))
                rep = torch.cat([last, (torch.softmax(e, dim=1) * states).sum(1)], dim=1)  # (B, 4h)
        out = self.head(self.drop(rep))  # (B, d)
        if self.config.residual_last:
            last_item = items.gather(1, (lengths.to(items.device) - 1).unsqueeze(1)).squeeze(1)  # (B,)
            out = out + self.embedding(last_item)
        return out

    def item_table(self) -> torch.Tensor:
        """The output item table, shape ``(n + 1, embedding_dim)``."""
        return self.embedding.weight if self.output is None else self.output.weight

    def forward(
        self, items: torch.Tensor, lengths: torch.Tensor, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Scores over the catalogue and, given targets, the training loss.

        Returns
        -------
        scores : tensor, shape (B, n + 1), or None
            Column 0 (padding) is ``-inf``. ``None`` when ``loss="sampled"`` and
            targets are given (training never builds the full score matrix then).
        loss : scalar tensor or None
            Mean cross-entropy of the targets (``None`` without targets).
        """
        rep = self.encode(items, lengths)  # (B, d)
        table = self.item_table()
        if targets is not None and self.config.loss == "sampled":
            return None, self._sampled_loss(rep, table, targets)
        scores = rep @ table.T + self.bias  # (B, n + 1)
        scores[:, 0] = float("-inf")
        loss = F.cross_entropy(scores, targets) if targets is not None else None
        return scores, loss

    def _sampled_loss(self, rep: torch.Tensor, table: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """In-batch negatives (+ shared uniform negatives) with the log-Q correction."""
        cand = targets
        if self.config.n_negatives:
            extra = torch.randint(1, self.config.n_items + 1, (self.config.n_negatives,), device=targets.device)
            cand = torch.cat([targets, extra])
        logits = rep @ table[cand].T + self.bias[cand]  # (B, B + m)
        # log-Q correction: subtract the log of each column's expected count in a batch
        # (B * p(item) for in-batch targets, m / n for the uniform extras), so that
        # popular items are not pushed down just for being drawn as negatives often
        B, m = len(targets), len(cand) - len(targets)
        log_q = torch.cat(
            [self.log_freq[targets] + np.log(B), torch.full((m,), np.log(max(m, 1) / self.config.n_items), device=rep.device)]
        )
        logits = logits - log_q.unsqueeze(0)
        # a candidate equal to the row's target (other than its own column) is not a negative
        same = cand.unsqueeze(0) == targets.unsqueeze(1)  # (B, B + m)
        own = torch.zeros_like(same)
        own[:, : len(targets)] = torch.eye(len(targets), dtype=torch.bool, device=targets.device)
        logits = logits.masked_fill(same & ~own, float("-inf"))
        return F.cross_entropy(logits, torch.arange(len(targets), device=targets.device))
