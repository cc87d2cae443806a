"""A tiny llama-architecture GGUF model, written with llama.cpp's own gguf-py writer.

Two layers, width 64, random weights: the text it produces is garbage, but llama-server loads
it, tokenizes with a real SPM vocabulary (copied from the vocab-only ``ggml-vocab-llama-spm``
file llama.cpp ships for its tokenizer tests) and speaks its real wire format. A default
grammar on llama-server's command line shapes the garbage where a test needs a shape
(``<think>...</think>`` for reasoning).

    python -m tests.llama.tinymodel LLAMA_HOME OUT.gguf
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

LAYERS = 2
WIDTH = 64
HEADS = 4
FFN = 128
TRAINED_CONTEXT = 4096


def llama_tree(home: Path) -> Path:
    """The llama.cpp source tree inside the cached sdist."""
    return home / "src" / "vendor" / "llama.cpp"


def _gguf(home: Path) -> Any:
    gguf_py = str(llama_tree(home) / "gguf-py")
    if gguf_py not in sys.path:
        sys.path.insert(0, gguf_py)
    import gguf

    return gguf


def write_tiny_model(home: Path, out: Path, seed: int = 19) -> Path:
    """Writes the model to ``out`` (atomically) and returns ``out``."""
    import numpy as np

    gguf = _gguf(home)
    vocab = gguf.GGUFReader(str(llama_tree(home) / "models" / "ggml-vocab-llama-spm.gguf"))
    tmp = out.with_suffix(".tmp")
    writer = gguf.GGUFWriter(str(tmp), "llama")
    writer.add_name("switchboard-tiny")
    writer.add_context_length(TRAINED_CONTEXT)
    writer.add_embedding_length(WIDTH)
    writer.add_block_count(LAYERS)
    writer.add_feed_forward_length(FFN)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(HEADS)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(WIDTH // HEADS)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    n_vocab = 0
    for name, field in vocab.fields.items():
        if not name.startswith("tokenizer."):
            continue
        value = field.contents()
        main = field.types[0]
        sub = field.types[-1] if main == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(name, value, main, sub)
        if name == "tokenizer.ggml.tokens":
            n_vocab = len(value)
    rng = np.random.default_rng(seed)

    def weights(*shape: int) -> Any:
        return (rng.standard_normal(shape) * 0.2).astype(np.float32)

    writer.add_tensor("token_embd.weight", weights(n_vocab, WIDTH))
    writer.add_tensor("output_norm.weight", np.ones(WIDTH, dtype=np.float32))
    writer.add_tensor("output.weight", weights(n_vocab, WIDTH))
    for i in range(LAYERS):
        blk = f"blk.{i}"
        writer.add_tensor(f"{blk}.attn_norm.weight", np.ones(WIDTH, dtype=np.float32))
        for t in ("attn_q", "attn_k", "attn_v", "attn_output"):
            writer.add_tensor(f"{blk}.{t}.weight", weights(WIDTH, WIDTH))
        writer.add_tensor(f"{blk}.ffn_norm.weight", np.ones(WIDTH, dtype=np.float32))
        writer.add_tensor(f"{blk}.ffn_gate.weight", weights(FFN, WIDTH))
        writer.add_tensor(f"{blk}.ffn_up.weight", weights(FFN, WIDTH))
        writer.add_tensor(f"{blk}.ffn_down.weight", weights(WIDTH, FFN))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    tmp.replace(out)
    return out


if __name__ == "__main__":
    print(write_tiny_model(Path(sys.argv[1]), Path(sys.argv[2])))
