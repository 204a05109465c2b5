"""utils.model_to_dot / plot_model: node and edge sets (names, classes, shapes) against Keras 3's own
`keras.utils.model_to_dot` on the same architecture; the missing-pydot / missing-graphviz errors."""
import os
import re
import shutil

import pytest

pydot = pytest.importorskip("pydot")
os.environ.setdefault("KERAS_BACKEND", "jax")
keras = pytest.importorskip("keras")

import rnnstate  # noqa: E402
from rnnstate import layers, utils  # noqa: E402

_HEAD = re.compile(r"<b>([^<]*)</b> \((\w+)\)")
_CELL = re.compile(r"(Input shape|Output shape|Output dtype): <b>([^<]*)</b>")


def _parse(dot):
    """{name: (class, {field: value})} and {(src name, dst name)} from a pydot graph (ours or Keras')."""
    nodes, ids = {}, {}
    for n in dot.get_nodes():
        label = n.get("label")
        if not label:
            continue
        name, cls = _HEAD.search(label).groups()
        nodes[name] = (cls, dict(_CELL.findall(label)))
        ids[n.get_name().strip('"')] = name
    edges = {(ids[e.get_source().strip('"')], ids[e.get_destination().strip('"')]) for e in dot.get_edges()}
    return nodes, edges


def _encoder_decoder(lib):
    enc_in = lib.Input((3, 2), name="enc_in")
    _, h, c = lib.layers.LSTM(4, return_state=True, name="encoder")(enc_in)
    dec_in = lib.Input((5, 2), name="dec_in")
    y = lib.layers.LSTM(4, return_sequences=True, return_state=True, name="decoder")(dec_in, initial_state=[h, c])
    out = lib.layers.Dense(1, name="head")(y[0])
    return lib.Model([enc_in, dec_in], [out, y[1]])


def _sequential(lib):
    return lib.Sequential([lib.Input((3, 2)), lib.layers.LSTM(4, return_sequences=True, name="l1"),
                           lib.layers.GRU(5, name="l2"), lib.layers.Dense(2, name="d")])


@pytest.mark.parametrize("build", [_encoder_decoder, _sequential])
def test_nodes_and_edges_match_keras(build):
    ours = _parse(utils.model_to_dot(build(rnnstate), show_shapes=True))
    theirs = _parse(keras.utils.model_to_dot(build(keras), show_shapes=True, show_layer_names=True))
    assert len(theirs[1]) >= 2
    assert ours[1] == theirs[1]        # edges, by layer name
    assert ours[0] == theirs[0]        # per layer: class, input shape(s) (states included), output shape(s)


def test_state_shapes_and_options():
    nodes, edges = _parse(utils.model_to_dot(_encoder_decoder(rnnstate), show_shapes=True, show_dtype=True))
    assert nodes["encoder"] == ("LSTM", {"Input shape": "(None, 3, 2)", "Output dtype": "['float32', 'float32', "
                                         "'float32']", "Output shape": "[(None, 4), (None, 4), (None, 4)]"})
    # the decoder consumes x and the encoder's two states
    assert nodes["decoder"][1]["Input shape"] == "[(None, 5, 2), (None, 4), (None, 4)]"
    assert nodes["decoder"][1]["Output shape"] == "[(None, 5, 4), (None, 4), (None, 4)]"
    assert nodes["enc_in"] == ("InputLayer", {"Output shape": "(None, 3, 2)", "Output dtype": "float32"})
    plain = utils.model_to_dot(_sequential(rnnstate), show_layer_names=False, rankdir="LR")
    assert plain.get("rankdir") == "LR"
    labels = [n.get("label") for n in plain.get_nodes() if n.get("label")]
    assert len(labels) == 3 and not any("shape" in s for s in labels)
    assert [re.search(r"<b>(\w+)</b>", s).group(1) for s in labels] == ["LSTM", "GRU", "Dense"]
    with pytest.raises(ValueError, match="layer_range"):
        utils.model_to_dot(_sequential(rnnstate), layer_range=["l1", "d"])


def test_nested_model_expanded():
    inner = _sequential(rnnstate)
    x = rnnstate.Input((3, 2), name="x")
    outer = rnnstate.Model(x, layers.Dense(1, name="top")(inner(x)))
    nodes, edges = _parse(utils.model_to_dot(outer))
    assert edges == {("x", inner.name), (inner.name, "top")}
    dot = utils.model_to_dot(outer, expand_nested=True)
    assert [g.get_name() for g in dot.get_subgraphs()] == [f"cluster_{inner.name}"]
    ids = {n.get_name().strip('"') for g in dot.get_subgraphs() for n in g.get_nodes()}
    assert ids == {f"{inner.name}/l1", f"{inner.name}/l2", f"{inner.name}/d"}
    got = {(e.get_source().strip('"'), e.get_destination().strip('"')) for e in dot.get_edges()}
    got |= {(e.get_source().strip('"'), e.get_destination().strip('"'))
            for g in dot.get_subgraphs() for e in g.get_edges()}
    assert got == {("x", f"{inner.name}/l1"), (f"{inner.name}/l1", f"{inner.name}/l2"),
                   (f"{inner.name}/l2", f"{inner.name}/d"), (f"{inner.name}/d", "top")}


def test_missing_graphviz_or_png(tmp_path, monkeypatch):
    model = _encoder_decoder(rnnstate)
    if shutil.which("dot") is not None:
        out = tmp_path / "model.png"
        utils.plot_model(model, out, show_shapes=True)
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # without `dot` on the PATH: the Graphviz message, and no file
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(ImportError, match=r"install graphviz.*graphviz\.gitlab\.io"):
        utils.plot_model(model, tmp_path / "none.png")
    assert not (tmp_path / "none.png").exists()


def test_missing_pydot(monkeypatch):
    import builtins
    real = builtins.__import__

    def fake(name, *a, **k):
        if name == "pydot":
            raise ImportError("No module named 'pydot'")
        return real(name, *a, **k)
    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(ImportError, match=r"You must install pydot \(`pip install pydot`.*for `plot_model`"):
        utils.plot_model(_sequential(rnnstate))
    with pytest.raises(ImportError, match="for `model_to_dot`"):
        utils.model_to_dot(_sequential(rnnstate))


def test_unbuilt_sequential_refused():
    with pytest.raises(ValueError, match="not built yet"):
        utils.model_to_dot(rnnstate.Sequential([layers.LSTM(3)]))
