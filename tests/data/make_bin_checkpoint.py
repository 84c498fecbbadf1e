#!/usr/bin/python3
"""Writes the tiny PyTorch `.bin` fixtures under tests/data/bin/ (committed; tests need no Python).

  release/                     a two-shard HF-style release: pytorch_model-0000N-of-00002.bin +
                               pytorch_model.bin.index.json + config.json + tokenizer_config.json.
                               Mixed bf16/fp32/fp16/int64/bool tensors, transposed (non-contiguous)
                               views, a slice with a storage offset, tied tensors sharing one
                               storage, an nn.Parameter, an OrderedDict with torch's `_metadata`.
  reference.safetensors        the same tensors, contiguous, written by the small writer below
                               (not the safetensors package), for value comparisons.
  proto4.bin                   a state dict saved with pickle protocol 4 (FRAME, MEMOIZE,
                               SHORT_BINUNICODE, STACK_GLOBAL).
  zip64.bin                    the same records re-zipped with every size/offset in ZIP64 fields.
  evil.bin                     a torch.save-shaped zip whose data.pkl calls os.system.
  compressed.bin               a deflated data.pkl (torch.save never compresses).
  legacy.bin                   the pre-1.6 non-zip torch.save format (its storage keys are object
                               ids, so this one file differs from run to run; the rest is stable).

Run with Debian's python3-torch: /usr/bin/python3 tests/data/make_bin_checkpoint.py
"""
import collections
import json
import os
import struct
import zipfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "bin")
RELEASE = os.path.join(OUT, "release")

ST_DTYPES = {
    torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
    torch.uint8: "U8", torch.bool: "BOOL",
}


def tensor_bytes(t):
    """Raw little-endian bytes of a tensor, contiguous."""
    t = t.detach().contiguous()
    if t.dtype in (torch.bfloat16, torch.float16):
        t = t.view(torch.int16)
    elif t.dtype == torch.bool:
        t = t.to(torch.uint8)
    return t.numpy().tobytes()


def write_safetensors(path, tensors):
    """Minimal safetensors writer: sorted names, contiguous data, 8-byte aligned data area."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name]
        data = tensor_bytes(t)
        header[name] = {"dtype": ST_DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - (8 + len(text)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def make_release():
    torch.manual_seed(0)
    # Shard 1: an OrderedDict with torch's `_metadata` attribute (what Module.state_dict returns).
    embed = torch.randn(6, 4).to(torch.bfloat16)
    proj_w = torch.randn(3, 4)
    big = torch.randn(4, 6).to(torch.bfloat16)
    base = torch.randn(10)
    shard1 = collections.OrderedDict()
    shard1["model.embed_tokens.weight"] = embed
    shard1["lm_head.weight"] = embed                 # tied: the very same tensor
    shard1["model.proj.weight"] = proj_w
    shard1["model.proj_t.weight"] = proj_w.t()       # non-contiguous view of the same storage
    shard1["model.window.weight"] = big[1:3, 2:5]    # storage offset 8, strides (6, 1)
    shard1["model.proj.bias"] = base[5:8]            # contiguous with storage offset 5
    shard1._metadata = collections.OrderedDict([("", {"version": 1})])
    # Shard 2: a plain dict (what transformers' sharding writes), more dtypes and a Parameter.
    shard2 = {
        "model.layers.0.weight": torch.randn(5, 5).t(),
        "model.layers.0.bias": torch.randn(5).to(torch.float16),
        "model.layers.0.scale": torch.nn.Parameter(torch.randn(2, 3), requires_grad=False),
        "model.counts": torch.tensor([3, -1, 1 << 40], dtype=torch.int64),
        "model.mask": torch.tensor([True, False, False, True]),
        "model.temperature": torch.tensor(0.5),      # 0-dim
        "model.expanded": torch.randn(3).expand(2, 3),  # stride 0
    }
    os.makedirs(RELEASE, exist_ok=True)
    names = ["pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin"]
    torch.save(shard1, os.path.join(RELEASE, names[0]))
    torch.save(shard2, os.path.join(RELEASE, names[1]))
    weight_map = {k: names[0] for k in shard1}
    weight_map.update({k: names[1] for k in shard2})
    total = sum(v.numel() * v.element_size() for d in (shard1, shard2) for v in d.values())
    with open(os.path.join(RELEASE, "pytorch_model.bin.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))},
                  f, indent=2)
    with open(os.path.join(RELEASE, "config.json"), "w") as f:
        json.dump({"architectures": ["GLaMMForCausalLM"], "hidden_size": 4, "torch_dtype": "bfloat16"},
                  f, indent=2)
    with open(os.path.join(RELEASE, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "LlamaTokenizer"}, f)
    reference = {k: v.detach() for d in (shard1, shard2) for k, v in d.items()}
    write_safetensors(os.path.join(OUT, "reference.safetensors"), reference)
    return shard2


def rezip64(src, dst):
    """Rewrites a torch.save zip with every size and offset in ZIP64 extra fields and a ZIP64 end
    record, as torch writes for files past 4 GB; data stays 64-byte aligned."""
    with zipfile.ZipFile(src) as z:
        records = [(i.filename, z.read(i.filename)) for i in z.infolist()]
    out, central = bytearray(), bytearray()
    for name, data in records:
        nm = name.encode()
        offset = len(out)
        # Local header with a padding extra field so the data starts 64-byte aligned.
        pad = (64 - (offset + 30 + len(nm) + 4) % 64) % 64
        extra = struct.pack("<HH", 0x4246, pad) + b"Z" * pad
        crc = zipfile.crc32(data)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, 0, 0, 0, crc, 0xFFFFFFFF,
                           0xFFFFFFFF, len(nm), len(extra)) + nm + extra + data
        z64 = struct.pack("<HHQQQ", 0x0001, 24, len(data), len(data), offset)
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0, 0, 0, 0, crc,
                               0xFFFFFFFF, 0xFFFFFFFF, len(nm), len(z64), 0, 0, 0, 0,
                               0xFFFFFFFF) + nm + z64
    cd_offset = len(out)
    out += central
    end64 = len(out)
    out += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, len(records), len(records),
                       len(central), cd_offset)
    out += struct.pack("<IIQI", 0x07064B50, 0, end64, 1)
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF, 0xFFFFFFFF,
                       0xFFFFFFFF, 0)
    with open(dst, "wb") as f:
        f.write(out)


def write_zip(path, records, compress=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w") as z:
        for name, data in records:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = compress
            z.writestr(info, data)


def main():
    shard2 = make_release()
    small = {"a": torch.arange(6, dtype=torch.float32).reshape(2, 3).t(),
             "b": torch.arange(4, dtype=torch.bfloat16)}
    torch.save(small, os.path.join(OUT, "proto4.bin"), pickle_protocol=4)
    rezip64(os.path.join(RELEASE, "pytorch_model-00002-of-00002.bin"), os.path.join(OUT, "zip64.bin"))
    # os.system("true") if unpickled by a permissive loader.
    evil = (b"\x80\x02cos\nsystem\nq\x00X\x04\x00\x00\x00trueq\x01\x85q\x02Rq\x03.")
    write_zip(os.path.join(OUT, "evil.bin"), [("evil/data.pkl", evil), ("evil/version", b"3\n")])
    with zipfile.ZipFile(os.path.join(OUT, "proto4.bin")) as z:
        pkl = z.read("proto4/data.pkl")
    write_zip(os.path.join(OUT, "compressed.bin"), [("compressed/data.pkl", pkl)], zipfile.ZIP_DEFLATED)
    torch.save(small, os.path.join(OUT, "legacy.bin"), _use_new_zipfile_serialization=False)
    for root, _, files in os.walk(OUT):
        for f in sorted(files):
            p = os.path.join(root, f)
            print(f"{os.path.relpath(p, HERE):55s} {os.path.getsize(p):6d} bytes")


if __name__ == "__main__":
    main()
