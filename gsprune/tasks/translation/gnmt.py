"""GNMT (Wu et al. 2016) as a fairseq model, in the shape of the GNMT v2 reference.

The layout follows the GNMT v2 reference implementations (NVIDIA's
DeepLearningExamples ``seq2seq`` and MLPerf's ``gnmt``):

- encoder: ``layers`` LSTM layers of ``hidden`` units; the first is
  bidirectional (its two directions concatenated, 2 x hidden; two LSTMs,
  ``forward_lstm`` and ``backward_lstm``, see ``BidirectionalLSTM``), the second maps
  back to ``hidden``, and every layer from the third on adds its input to its
  output (a residual connection); dropout before every layer;
- decoder: a first LSTM layer whose output queries a normalized Bahdanau
  attention over the encoder states (``RecurrentAttention``); each of the
  ``layers - 1`` later LSTM layers takes ``[its input, attention context]``, the
  layers from the third on with a residual connection; a linear classifier over
  the joined vocabulary.

Unlike the reference, the source and target embeddings may be shared (one
joined dictionary) and the classifier may be tied to the target embedding:
both help small corpora (``share_embeddings``, ``tie_output``; the paper-scale
config keeps them off). Decoding is fairseq's ``SequenceGenerator``: the decoder
is a ``FairseqIncrementalDecoder`` that carries each LSTM's (h, c) between steps.

Shapes: tokens ``long[B, T]`` (source left-padded, fairseq's default); encoder
states ``float[T_src, B, hidden]``; decoder output ``float[B, T_tgt, vocab]``.
Prunable GEMMs: every ``weight_ih_l*`` ``[4H, in]`` and ``weight_hh_l*``
``[4H, H]`` of the LSTMs and the attention's query/key projections ``[H, H]``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from fairseq.data import Dictionary
from fairseq.models import (
    FairseqEncoder,
    FairseqEncoderDecoderModel,
    FairseqIncrementalDecoder,
    register_model,
    register_model_architecture,
)
from torch import nn

from gsprune.tasks.base import check_flag

# model_args accepted by build_gnmt (the keys of a task config's ``model_args``).
GNMT_DEFAULTS: dict[str, Any] = {
    "hidden": 1024,
    "encoder_layers": 4,
    "decoder_layers": 4,
    "dropout": 0.2,
    "share_embeddings": False,
    "tie_output": False,
}


class BahdanauAttention(nn.Module):
    """Normalized additive attention: ``score = g * v/|v| . tanh(W_q q + W_k k + b)``.

    ``query: [B, Tq, H]``, ``keys: [B, Tk, H]`` (projected once per sentence by
    ``project_keys``), ``pad_mask: bool[B, Tk]`` (True at padding). Returns the
    context ``[B, Tq, H]`` and the weights ``[B, Tq, Tk]``.
    """

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.linear_q = nn.Linear(hidden, hidden, bias=False)
        self.linear_k = nn.Linear(hidden, hidden, bias=False)
        self.linear_att = nn.Parameter(torch.empty(hidden).uniform_(-0.1, 0.1))
        self.normalize_scalar = nn.Parameter(torch.tensor(1.0 / math.sqrt(hidden)))
        self.normalize_bias = nn.Parameter(torch.zeros(hidden))

    def project_keys(self, keys: torch.Tensor) -> torch.Tensor:
        return self.linear_k(keys)

    def forward(
        self,
        query: torch.Tensor,
        keys: torch.Tensor,
        projected_keys: torch.Tensor,
        pad_mask: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        q = self.linear_q(query).unsqueeze(2)  # [B, Tq, 1, H]
        k = projected_keys.unsqueeze(1)  # [B, 1, Tk, H]
        v = self.linear_att / self.linear_att.norm() * self.normalize_scalar
        scores = torch.tanh(q + k + self.normalize_bias).matmul(v)  # [B, Tq, Tk]
        if pad_mask is not None:
            scores = scores.masked_fill(pad_mask.unsqueeze(1), float("-inf"))
        weights = F.softmax(scores.float(), dim=-1).type_as(scores)
        return torch.bmm(weights, keys), weights


class BidirectionalLSTM(nn.Module):
    """One bidirectional LSTM layer over right-padded input, as two unidirectional LSTMs.

    The backward LSTM reads every sentence reversed in place (its padding stays
    last), so each sentence's backward pass starts at its own last token, as a
    packed sequence would; unlike a packed sequence, both directions take
    torch's fused (oneDNN) LSTM path, several times faster on CPUs.
    ``x: [T, B, in]``, ``lengths: long[B]`` -> ``[T, B, 2H]`` (forward, backward);
    the outputs at padding positions are not meaningful.
    """

    def __init__(self, input_size: int, hidden: int) -> None:
        super().__init__()
        self.forward_lstm = nn.LSTM(input_size, hidden)
        self.backward_lstm = nn.LSTM(input_size, hidden)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        steps = torch.arange(x.size(0), device=x.device).unsqueeze(1)  # [T, 1]
        # Step t of sentence b reads step L_b - 1 - t (padding maps to itself); an involution.
        flip = torch.where(steps < lengths, lengths - 1 - steps, steps)
        flip = flip.unsqueeze(-1).expand(-1, -1, x.size(-1))
        forward, _ = self.forward_lstm(x)
        backward, _ = self.backward_lstm(x.gather(0, flip))
        backward = backward.gather(0, flip[..., :1].expand_as(backward))
        return torch.cat([forward, backward], dim=-1)


class GNMTEncoder(FairseqEncoder):
    """Bidirectional first layer, residual connections from the third layer on."""

    def __init__(
        self, dictionary: Dictionary, embed: nn.Embedding, hidden: int, layers: int, dropout: float
    ) -> None:
        super().__init__(dictionary)
        if layers < 2:
            raise ValueError(f"GNMT needs at least 2 encoder layers; got encoder_layers={layers}")
        self.embed_tokens = embed
        self.dropout = nn.Dropout(dropout)
        self.rnn_layers = nn.ModuleList(
            [BidirectionalLSTM(hidden, hidden), nn.LSTM(2 * hidden, hidden)]
            + [nn.LSTM(hidden, hidden) for _ in range(layers - 2)]
        )

    def forward(self, src_tokens: torch.Tensor, src_lengths: torch.Tensor) -> dict[str, Any]:
        """``src_tokens: long[B, T]`` -> ``{"encoder_out": [T, B, H], "pad_mask": bool[B, T]}``.

        fairseq pads sources on the left; the encoder moves each sentence to
        the start of its column first, so that no LSTM reads padding before a
        sentence's tokens (a sentence's states do not depend on its batch; the
        bidirectional layer reverses each sentence in place). The states and
        the mask come out right-padded (padding last).
        """
        left_pad = src_tokens.eq(self.dictionary.pad())
        lengths = (~left_pad).sum(1)
        steps = torch.arange(src_tokens.size(1), device=src_tokens.device)
        # Row b's real tokens sit at T - L_b .. T - 1; roll them to 0 .. L_b - 1.
        source = (steps.unsqueeze(0) + src_tokens.size(1) - lengths.unsqueeze(1)) % src_tokens.size(
            1
        )
        tokens = src_tokens.gather(1, source)
        pad_mask = steps.unsqueeze(0) >= lengths.unsqueeze(1)
        x = self.dropout(self.embed_tokens(tokens)).transpose(0, 1)  # [T, B, H]
        x = self.rnn_layers[0](x, lengths)
        x, _ = self.rnn_layers[1](self.dropout(x))
        for layer in self.rnn_layers[2:]:
            x = x + layer(self.dropout(x))[0]
        return {"encoder_out": x, "pad_mask": pad_mask}

    def reorder_encoder_out(self, encoder_out: dict[str, Any], new_order: torch.Tensor):
        """Beam search: select/repeat sentences of the batch (dim 1 of states, 0 of the mask)."""
        return {
            "encoder_out": encoder_out["encoder_out"].index_select(1, new_order),
            "pad_mask": encoder_out["pad_mask"].index_select(0, new_order),
        }

    def max_positions(self) -> int:
        return int(1e5)


class GNMTDecoder(FairseqIncrementalDecoder):
    """Attention LSTM, then LSTMs fed ``[x, context]``, residual from the third layer on."""

    def __init__(
        self,
        dictionary: Dictionary,
        embed: nn.Embedding,
        hidden: int,
        layers: int,
        dropout: float,
        tie_output: bool,
    ) -> None:
        super().__init__(dictionary)
        if layers < 2:
            raise ValueError(f"GNMT needs at least 2 decoder layers; got decoder_layers={layers}")
        self.embed_tokens = embed
        self.dropout = nn.Dropout(dropout)
        self.att_rnn = nn.LSTM(hidden, hidden)
        self.attention = BahdanauAttention(hidden)
        self.rnn_layers = nn.ModuleList([nn.LSTM(2 * hidden, hidden) for _ in range(layers - 1)])
        self.classifier = nn.Linear(hidden, len(dictionary))
        if tie_output:
            self.classifier.weight = embed.weight

    def forward(
        self,
        prev_output_tokens: torch.Tensor,
        encoder_out: dict[str, Any],
        incremental_state: dict | None = None,
        **unused: Any,
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        """``prev_output_tokens: long[B, T]`` -> ``(logits [B, T, V], {"attn": [B, T, T_src]})``.

        With ``incremental_state`` only the last token is fed and every LSTM
        continues from its cached (h, c).
        """
        if incremental_state is not None:
            prev_output_tokens = prev_output_tokens[:, -1:]
        cached = self._cached(incremental_state)
        states: list[tuple[torch.Tensor, torch.Tensor]] = []
        keys = encoder_out["encoder_out"].transpose(0, 1)  # [B, T_src, H]
        if cached is not None and "keys" in cached:
            projected = cached["keys"]
        else:
            projected = self.attention.project_keys(keys)
        x = self.dropout(self.embed_tokens(prev_output_tokens)).transpose(0, 1)  # [T, B, H]
        x, state = self.att_rnn(x, _state(cached, 0))
        states.append(state)
        context, weights = self.attention(
            x.transpose(0, 1), keys, projected, encoder_out["pad_mask"]
        )
        context = context.transpose(0, 1)  # [T, B, H]
        for index, layer in enumerate(self.rnn_layers, start=1):
            out, state = layer(torch.cat([self.dropout(x), context], dim=-1), _state(cached, index))
            states.append(state)
            x = out if index == 1 else x + out
        if incremental_state is not None:
            self._cache(incremental_state, states, projected)
        logits = self.classifier(self.dropout(x)).transpose(0, 1)
        return logits, {"attn": [weights]}

    def _cached(self, incremental_state: dict | None) -> dict[str, Any] | None:
        if incremental_state is None:
            return None
        return self.get_incremental_state(incremental_state, "gnmt")

    def _cache(
        self,
        incremental_state: dict,
        states: list[tuple[torch.Tensor, torch.Tensor]],
        projected: torch.Tensor,
    ) -> None:
        value: dict[str, Any] = {"keys": projected}
        for index, (h, c) in enumerate(states):
            value[f"h{index}"], value[f"c{index}"] = h, c
        self.set_incremental_state(incremental_state, "gnmt", value)

    def reorder_incremental_state(self, incremental_state: dict, new_order: torch.Tensor) -> None:
        """Beam search: the cached (h, c) are ``[1, B, H]``, the projected keys ``[B, T, H]``."""
        cached = self._cached(incremental_state)
        if cached is None:
            return
        reordered = {
            key: value.index_select(0 if key == "keys" else 1, new_order)
            for key, value in cached.items()
        }
        self.set_incremental_state(incremental_state, "gnmt", reordered)

    def max_positions(self) -> int:
        return int(1e5)


def _state(cached: dict[str, Any] | None, index: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    if cached is None or f"h{index}" not in cached:
        return None
    return cached[f"h{index}"], cached[f"c{index}"]


@register_model("gnmt")
class GNMTModel(FairseqEncoderDecoderModel):
    """GNMT registered with fairseq (``--arch gnmt``); gsprune builds it with ``build_gnmt``."""

    @staticmethod
    def add_args(parser) -> None:
        parser.add_argument("--hidden", type=int)
        parser.add_argument("--encoder-layers", type=int)
        parser.add_argument("--decoder-layers", type=int)
        parser.add_argument("--dropout", type=float)
        parser.add_argument("--share-embeddings", action="store_true")
        parser.add_argument("--tie-output", action="store_true")

    @classmethod
    def build_model(cls, args, task) -> GNMTModel:
        if task.source_dictionary != task.target_dictionary:
            raise ValueError(
                "GNMT here needs one joined dictionary (fairseq-preprocess --joined-dictionary)"
            )
        settings = {key: getattr(args, key, value) for key, value in GNMT_DEFAULTS.items()}
        return build_gnmt(task.source_dictionary, **settings)


@register_model_architecture("gnmt", "gnmt")
def gnmt_architecture(args) -> None:
    """Fill the settings fairseq's command line left unset (an explicit 0 stays 0)."""
    for key, value in GNMT_DEFAULTS.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)


def check_gnmt_args(model_args: Mapping[str, Any]) -> dict[str, Any]:
    """``GNMT_DEFAULTS`` updated by ``model_args``, or a ValueError naming the bad key or value."""
    if not isinstance(model_args, Mapping):
        raise ValueError(f"task.model_args={model_args!r} must be a mapping")
    unknown = sorted(set(model_args) - set(GNMT_DEFAULTS))
    if unknown:
        raise ValueError(
            f"task.model_args has unknown key(s) {unknown}; accepted: {sorted(GNMT_DEFAULTS)}"
        )
    settings = {**GNMT_DEFAULTS, **model_args}
    for key, least in (("hidden", 1), ("encoder_layers", 2), ("decoder_layers", 2)):
        value = settings[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"task.model_args.{key}={value!r} must be an integer >= {least}")
    dropout = settings["dropout"]
    if isinstance(dropout, bool) or not isinstance(dropout, int | float) or not 0 <= dropout < 1:
        raise ValueError(f"task.model_args.dropout={dropout!r} must be a number in [0, 1)")
    for key in ("share_embeddings", "tie_output"):
        check_flag(settings[key], f"task.model_args.{key}")
    return settings


def build_gnmt(dictionary: Dictionary, **model_args: Any) -> GNMTModel:
    """A GNMT over one joined ``dictionary``; ``model_args`` override ``GNMT_DEFAULTS``.

    Bad keys or values raise ValueError (``check_gnmt_args``). Parameters are
    initialised uniformly in [-0.1, 0.1] as in the GNMT v2 reference.
    """
    settings = check_gnmt_args(model_args)
    hidden, dropout = settings["hidden"], float(settings["dropout"])
    source_embed = nn.Embedding(len(dictionary), hidden, padding_idx=dictionary.pad())
    target_embed = (
        source_embed
        if settings["share_embeddings"]
        else nn.Embedding(len(dictionary), hidden, padding_idx=dictionary.pad())
    )
    encoder = GNMTEncoder(
        dictionary, source_embed, hidden, int(settings["encoder_layers"]), dropout
    )
    decoder = GNMTDecoder(
        dictionary,
        target_embed,
        hidden,
        int(settings["decoder_layers"]),
        dropout,
        bool(settings["tie_output"]),
    )
    model = GNMTModel(encoder, decoder)
    for param in model.parameters():
        nn.init.uniform_(param, -0.1, 0.1)
    with torch.no_grad():
        model.decoder.attention.normalize_scalar.fill_(1.0 / math.sqrt(hidden))
        model.decoder.attention.normalize_bias.zero_()
        source_embed.weight[dictionary.pad()].zero_()
        target_embed.weight[dictionary.pad()].zero_()
    return model
