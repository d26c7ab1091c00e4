"""GNMT as a fairseq model: shapes, residual wiring, padding independence, incremental decoding."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from fairseq.data import Dictionary, data_utils
from fairseq.models import ARCH_MODEL_REGISTRY

from gsprune.tasks.translation.gnmt import (
    BidirectionalLSTM,
    GNMTModel,
    build_gnmt,
    check_gnmt_args,
)
from gsprune.views import prunable_parameters

SMALL = {"hidden": 16, "encoder_layers": 4, "decoder_layers": 4, "dropout": 0.0}


def dictionary(size: int = 20) -> Dictionary:
    words = Dictionary()
    for index in range(size):
        words.add_symbol(f"w{index}")
    return words


def left_padded(rows: list[list[int]], pad: int) -> torch.Tensor:
    """Sentences as fairseq batches them: padded on the left to the longest."""
    width = max(map(len, rows))
    return torch.tensor([[pad] * (width - len(row)) + row for row in rows])


def model_and_batch(**overrides):
    words = dictionary()
    torch.manual_seed(0)
    model = build_gnmt(words, **{**SMALL, **overrides}).eval()
    eos = words.eos()
    src = left_padded([[5, 6, 7, 8, eos], [9, 10, eos]], words.pad())
    lengths = src.ne(words.pad()).sum(1)
    prev = torch.tensor([[eos, 11, 12, 13], [eos, 14, 15, 16]])
    return words, model, src, lengths, prev


def test_registered_with_fairseq_and_forward_shapes():
    assert ARCH_MODEL_REGISTRY["gnmt"] is GNMTModel
    words, model, src, lengths, prev = model_and_batch()
    encoded = model.encoder(src, lengths)
    assert encoded["encoder_out"].shape == (5, 2, 16)
    # Padding moves last: the second sentence's 3 tokens fill steps 0..2.
    assert encoded["pad_mask"].tolist() == [[False] * 5, [False] * 3 + [True] * 2]
    logits, extra = model(src, lengths, prev)
    assert logits.shape == (2, 4, len(words))
    (attn,) = extra["attn"]
    assert attn.shape == (2, 4, 5)
    assert torch.allclose(attn.sum(-1), torch.ones(2, 4))
    assert attn[1, :, 3:].abs().max() == 0  # no weight on padding


def test_layers_and_prunable_gemms_follow_gnmt_v2():
    _, model, *_ = model_and_batch()
    first = model.encoder.rnn_layers[0]
    assert first.forward_lstm.input_size == first.backward_lstm.input_size == 16
    assert model.encoder.rnn_layers[1].input_size == 32  # both directions concatenated
    assert all(layer.input_size == 32 for layer in model.decoder.rnn_layers)  # [x, context]
    names = prunable_parameters(model, ["*"], ["decoder.classifier.weight"])
    assert "encoder.rnn_layers.0.backward_lstm.weight_ih_l0" in names
    assert "decoder.attention.linear_q.weight" in names
    assert all(tuple(p.shape)[0] in (64, 16) for p in names.values())  # 4H gates, H attention


def zeroed(module: torch.nn.Module) -> None:
    """An LSTM with all-zero weights and biases outputs exactly zero (c stays 0)."""
    with torch.no_grad():
        for param in module.parameters():
            param.zero_()


def test_encoder_residuals_start_at_the_third_layer():
    _, model, src, lengths, _ = model_and_batch()
    shorter = copy.deepcopy(model)
    shorter.encoder.rnn_layers = shorter.encoder.rnn_layers[:3]
    zeroed(model.encoder.rnn_layers[3])  # a residual layer that adds zero is the identity
    assert torch.allclose(
        model.encoder(src, lengths)["encoder_out"], shorter.encoder(src, lengths)["encoder_out"]
    )
    zeroed(model.encoder.rnn_layers[1])  # the second layer has no residual: all zero after it
    zeroed(model.encoder.rnn_layers[2])
    zeroed(model.encoder.rnn_layers[3])
    assert model.encoder(src, lengths)["encoder_out"].abs().max() == 0


def test_decoder_residuals_start_at_the_third_layer():
    _, model, src, lengths, prev = model_and_batch()
    shorter = copy.deepcopy(model)
    shorter.decoder.rnn_layers = shorter.decoder.rnn_layers[:2]
    zeroed(model.decoder.rnn_layers[2])
    assert torch.allclose(model(src, lengths, prev)[0], shorter(src, lengths, prev)[0])
    # The attention LSTM's output feeds the next layer directly (no residual there).
    zeroed(model.decoder.rnn_layers[0])
    zeroed(model.decoder.rnn_layers[1])
    zeroed(model.decoder.rnn_layers[2])
    logits = model(src, lengths, prev)[0]
    bias = model.decoder.classifier.bias
    assert torch.allclose(logits, bias.expand_as(logits))


def test_bidirectional_layer_equals_a_packed_bidirectional_lstm():
    torch.manual_seed(0)
    layer = BidirectionalLSTM(3, 4)
    packed_lstm = torch.nn.LSTM(3, 4, bidirectional=True)
    with torch.no_grad():
        for suffix, lstm in (("", layer.forward_lstm), ("_reverse", layer.backward_lstm)):
            for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
                getattr(packed_lstm, name + suffix).copy_(getattr(lstm, name))
    x, lengths = torch.randn(5, 3, 3), torch.tensor([5, 2, 4])
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False)
    expected, _ = torch.nn.utils.rnn.pad_packed_sequence(packed_lstm(packed)[0], total_length=5)
    got = layer(x, lengths)
    for b, length in enumerate(lengths.tolist()):
        assert torch.allclose(got[:length, b], expected[:length, b], atol=1e-6)


def test_a_sentence_encodes_the_same_alone_and_in_a_padded_batch():
    words, model, src, lengths, _ = model_and_batch()
    alone = torch.tensor([[9, 10, words.eos()]])
    by_itself = model.encoder(alone, torch.tensor([3]))["encoder_out"][:, 0]
    in_batch = model.encoder(src, lengths)["encoder_out"][:3, 1]
    assert torch.allclose(by_itself, in_batch, atol=1e-6)


def test_incremental_decoding_matches_teacher_forcing():
    _, model, src, lengths, prev = model_and_batch()
    encoded = model.encoder(src, lengths)
    full, _ = model.decoder(prev, encoded)
    state: dict = {}
    steps = [model.decoder(prev[:, : t + 1], encoded, incremental_state=state)[0] for t in range(4)]
    assert torch.allclose(torch.cat(steps, dim=1), full, atol=1e-5)


def test_tied_and_shared_embeddings():
    words, model, *_ = model_and_batch(share_embeddings=True, tie_output=True)
    assert model.encoder.embed_tokens is model.decoder.embed_tokens
    assert model.decoder.classifier.weight is model.decoder.embed_tokens.weight
    assert model.encoder.embed_tokens.weight[words.pad()].abs().max() == 0


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ({"depth": 3}, r"unknown key\(s\) \['depth'\]"),
        ({"hidden": 0}, "hidden=0"),
        ({"encoder_layers": 1}, "encoder_layers=1"),
        ({"dropout": 1.0}, "dropout=1.0"),
        ({"tie_output": "yes"}, "tie_output='yes'"),
    ],
)
def test_bad_model_args_are_named(args, match):
    with pytest.raises(ValueError, match=match):
        check_gnmt_args(args)


def test_fairseq_beam_search_decodes_a_collated_batch():
    from fairseq.data import LanguagePairDataset
    from fairseq.sequence_generator import SequenceGenerator

    words, model, *_ = model_and_batch()
    eos = words.eos()
    sources = [
        torch.tensor([5, 6, 7, eos]),
        torch.tensor([9, eos]),
        torch.tensor([8, 8, 9, 10, eos]),
    ]
    targets = [torch.tensor([11, eos]), torch.tensor([12, 13, eos]), torch.tensor([14, eos])]
    data = LanguagePairDataset(sources, [4, 2, 5], words, targets, [2, 3, 2], words)
    batch = data.collater([data[i] for i in range(3)])
    generator = SequenceGenerator([model], words, beam_size=3, max_len_a=1.0, max_len_b=4)
    hypotheses = generator.generate([model], batch)
    assert len(hypotheses) == 3 and all(len(beam) == 3 for beam in hypotheses)
    longest = max(map(len, sources))  # fairseq: max length a * (longest source) + b, then eos
    for beam in hypotheses:
        best = beam[0]["tokens"]
        assert best[-1] == eos and len(best) <= longest + 4 + 1
        scores = [hyp["score"] for hyp in beam]
        assert scores == sorted(scores, reverse=True)


def test_fairseq_architecture_defaults_keep_explicit_zeros():
    from argparse import Namespace

    from gsprune.tasks.translation.gnmt import GNMT_DEFAULTS, gnmt_architecture

    args = Namespace(dropout=0.0, hidden=None)
    gnmt_architecture(args)
    assert args.dropout == 0.0 and args.hidden == GNMT_DEFAULTS["hidden"]
    assert args.share_embeddings is False and args.encoder_layers == 4


def reversal_batch(words: Dictionary, size: int, generator: torch.Generator):
    """Random token sequences (3-8 tokens) as a fairseq batch whose target is each reversed."""
    eos = torch.tensor([words.eos()])
    sequences = [
        torch.randint(words.nspecial, len(words), (int(n),), generator=generator)
        for n in torch.randint(3, 9, (size,), generator=generator)
    ]
    sources = [torch.cat([s, eos]) for s in sequences]
    targets = [torch.cat([s.flip(0), eos]) for s in sequences]
    net_input = {
        "src_tokens": data_utils.collate_tokens(sources, words.pad(), words.eos(), left_pad=True),
        "src_lengths": torch.tensor([len(s) for s in sources]),
        "prev_output_tokens": data_utils.collate_tokens(
            targets, words.pad(), words.eos(), move_eos_to_beginning=True
        ),
    }
    return net_input, data_utils.collate_tokens(targets, words.pad(), words.eos())


@pytest.mark.slow
def test_learns_to_reverse_sequences_through_its_attention():
    # The decoder starts from a zero state (GNMT v2): attention is its only path to the
    # source, so reversing random sequences can be learnt only if encoder, attention and
    # decoder are wired right. Chance is 1/20 per token. Measured: 95% after 200 steps,
    # 100% after 300 (about 6 s on 2 cores); at lr 3e-3 it takes twice the steps.
    words = dictionary()
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    model = build_gnmt(words, hidden=128, encoder_layers=2, decoder_layers=2, dropout=0.0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(300):
        net_input, target = reversal_batch(words, 32, generator)
        logits, _ = model(**net_input)
        loss = F.cross_entropy(logits.flatten(0, 1), target.flatten(), ignore_index=words.pad())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        net_input, target = reversal_batch(words, 200, generator)
        logits, extra = model(**net_input)
    real = target.ne(words.pad())
    accuracy = (logits.argmax(-1).eq(target) & real).sum() / real.sum()
    assert accuracy > 0.95
    # and it attends: on average half of a step's weight or more on one source position
    assert extra["attn"][0].max(-1).values[real].mean() > 0.5
