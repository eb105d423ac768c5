# Writes a tiny llama-architecture GGUF model with seeded random weights, for the tests and the
# benchmark that serve a real llama.cpp server (random weights: they check serving, not answers).
#
#   .build/pydeps/llama/bin/python3 tools/make-tiny-gguf.py OUTPUT_PATH [SEED]
#
# Run it with the llama group's interpreter (`tools/pydeps.sh llama`), which has gguf and numpy.
# It lives in tools/ rather than beside one test target because the supervised-server tests and
# bench/models.sh both make their model with it. The same SEED (default 0) gives the same bytes;
# the file is written beside OUTPUT_PATH and renamed into place, so a reader never sees half of it.
#
# The model: 2 layers, 64 dimensions, 4 attention heads (16 dimensions each, 4 KV heads), a
# feed-forward width of 128, float32 throughout, a training context of 2048 (so a server's default
# n_ctx fits); 470,272 bytes. Matrices are N(0, 0.02); norm weights are ones (zeros would make
# every logit 0). Tokenizer: SentencePiece ("llama") with byte fallback and no merges, 260 tokens:
# <unk> 0, <s> 1 (put before every prompt), </s> 2 (ends generation), <pad> 3, then <0x00>..<0xFF>
# (that exact spelling: llama.cpp looks bytes up by it), so any UTF-8 text tokenizes, a token a
# byte. The chat template is ChatML-like but not byte-for-byte llama-cpp-python's "chatml", so
# its server renders the model's own template (jinja2, sandboxed; "Using gguf chat template").
# Only the tensors llama.cpp's loader creates for this shape are written: it refuses a file with
# any other ("wrong number of tensors"). With random weights a reply is a stray byte or two,
# possibly invalid UTF-8: check a reply's shape, never its text.
#
# Served by llama-cpp-python 0.3.36 (tools/pydeps/llama.in) on the 2-core build machine:
#   python3 -m llama_cpp.server --model M --model_alias tiny --host 127.0.0.1 --port P
#     --n_ctx 256 --n_threads 1 --n_threads_batch 1 --interrupt_requests false [--verbose false]
# measured here with this model (other sessions' builds keeping the load average at 3 to 6):
# process start to GET /v1/models answering 0.5-1.0 s (Python imports; the model is loaded before
# the port is bound, so a port that answers has the model); first one-token chat completion
# 8-13 ms; warm one-token completion 1.5-2 ms at the median of 20 with the prompt repeated (its
# KV cache is reused: "full prompt already cached"), 3 ms with a new prompt each, 3 ms streamed;
# resident memory 80 MB, 4 threads; SIGTERM ends it in 0.2 s (uvicorn shuts down, then re-raises
# the signal: the exit status is "killed by SIGTERM", not 0). Pass --n_threads_batch 1: its
# default is the CPU count, and two prompt threads on a busy 2-core machine made a new prompt
# take 0.4-0.7 s in most runs. --verbose (default true) writes 26 KB to stderr while loading
# and 0.6 KB per request.

import os
import sys

import gguf
import numpy as np

LAYERS = 2
EMBEDDING = 64
HEADS = 4
KV_HEADS = 4
FEED_FORWARD = 128
CONTEXT = 2048
SPECIAL_TOKENS = [("<unk>", gguf.TokenType.UNKNOWN), ("<s>", gguf.TokenType.CONTROL),
                  ("</s>", gguf.TokenType.CONTROL), ("<pad>", gguf.TokenType.CONTROL)]
UNK, BOS, EOS, PAD = 0, 1, 2, 3
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def tensors(rng):
    """The llama loader's tensors for this shape, numpy order (rows, columns): gguf writes each
    shape reversed, as ggml's {ne0, ne1}, so an (out, in) matrix is the {in, out} llama.cpp wants."""
    vocab = len(SPECIAL_TOKENS) + 256
    kv = EMBEDDING // HEADS * KV_HEADS
    matrix = lambda rows, columns: rng.normal(0.0, 0.02, (rows, columns)).astype(np.float32)
    norm = lambda: np.ones(EMBEDDING, dtype=np.float32)
    yield "token_embd.weight", matrix(vocab, EMBEDDING)
    for n in range(LAYERS):
        yield f"blk.{n}.attn_norm.weight", norm()
        yield f"blk.{n}.attn_q.weight", matrix(EMBEDDING, EMBEDDING)
        yield f"blk.{n}.attn_k.weight", matrix(kv, EMBEDDING)
        yield f"blk.{n}.attn_v.weight", matrix(kv, EMBEDDING)
        yield f"blk.{n}.attn_output.weight", matrix(EMBEDDING, EMBEDDING)
        yield f"blk.{n}.ffn_norm.weight", norm()
        yield f"blk.{n}.ffn_gate.weight", matrix(FEED_FORWARD, EMBEDDING)
        yield f"blk.{n}.ffn_up.weight", matrix(FEED_FORWARD, EMBEDDING)
        yield f"blk.{n}.ffn_down.weight", matrix(EMBEDDING, FEED_FORWARD)
    yield "output_norm.weight", norm()
    yield "output.weight", matrix(vocab, EMBEDDING)


def write(path, seed):
    tokens = [text for text, _ in SPECIAL_TOKENS] + [f"<0x{b:02X}>" for b in range(256)]
    types = [kind for _, kind in SPECIAL_TOKENS] + [gguf.TokenType.BYTE] * 256
    writer = gguf.GGUFWriter(path, arch="llama")  # writes general.architecture itself
    writer.add_name("cordon-tiny")
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_context_length(CONTEXT)
    writer.add_embedding_length(EMBEDDING)
    writer.add_block_count(LAYERS)
    writer.add_feed_forward_length(FEED_FORWARD)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(KV_HEADS)
    writer.add_rope_dimension_count(EMBEDDING // HEADS)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(len(tokens))
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores([0.0] * len(tokens))
    writer.add_token_types(types)
    writer.add_unk_token_id(UNK)
    writer.add_bos_token_id(BOS)
    writer.add_eos_token_id(EOS)
    writer.add_pad_token_id(PAD)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    writer.add_chat_template(CHAT_TEMPLATE)
    for name, array in tensors(np.random.default_rng(seed)):
        writer.add_tensor(name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def main(argv):
    if len(argv) not in (2, 3):
        sys.exit(f"usage: {argv[0]} OUTPUT_PATH [SEED]")
    path = argv[1]
    try:
        seed = int(argv[2]) if len(argv) == 3 else 0
    except ValueError:
        sys.exit(f"{argv[0]}: SEED must be an integer, not {argv[2]!r}")
    partial = f"{path}.partial-{os.getpid()}"
    try:
        write(partial, seed)
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)


if __name__ == "__main__":
    main(sys.argv)
