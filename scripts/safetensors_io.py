"""Reading and writing safetensors files with numpy only, for the scripts beside the engine (they
also run on GPU servers, where nothing else is installed).

read(path) -> (header, {name: array}): arrays in the file's dtype, except BF16, widened to float32
(a bf16 is the high half of a float32). write(path, header, arrays) writes the arrays back in the
header's dtypes and order (BF16 rounded to nearest even), through a temporary file and a rename.
"""
import json
import os
import struct

import numpy as np

DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
          "U8": np.uint8, "BOOL": np.bool_}


def read(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    arrays = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        raw = data[begin:end]
        if info["dtype"] == "BF16":
            array = (np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
        else:
            array = np.frombuffer(raw, dtype=DTYPES[info["dtype"]]).copy()
        arrays[name] = array.reshape(info["shape"])
    return header, arrays


def _to_bytes(array, dtype):
    if dtype == "BF16":
        bits = np.ascontiguousarray(array, dtype=np.float32).view(np.uint32)
        bits = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
        return bits.astype(np.uint16).tobytes()
    return np.ascontiguousarray(array, dtype=DTYPES[dtype]).tobytes()


def write(path, header, arrays):
    tensors = sorted(((k, v) for k, v in header.items() if k != "__metadata__"),
                     key=lambda kv: kv[1]["data_offsets"][0])
    blobs = [_to_bytes(arrays[name], info["dtype"]) for name, info in tensors]
    for (name, info), blob in zip(tensors, blobs):
        begin, end = info["data_offsets"]
        if end - begin != len(blob):
            raise ValueError(f"{name}: {len(blob)} bytes where the header says {end - begin}")
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)
    os.replace(tmp, path)
