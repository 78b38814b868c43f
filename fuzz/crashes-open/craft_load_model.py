import json, struct, sys
def st(entries):
    # entries: list of (name, dtype, shape, nbytes)
    hdr, off = {}, 0
    for n, dt, sh, nb in entries:
        hdr[n] = {"dtype": dt, "shape": sh, "data_offsets": [off, off + nb]}
        off += nb
    h = json.dumps(hdr, separators=(",", ":")).encode()
    return struct.pack("<Q", len(h)) + h + bytes(off)
base = [("patch_embed.proj.weight", "F32", [8, 0, 4, 4], 0), ("blocks.0.mlp.fc1.weight", "F32", [16, 0], 0),
        ("cls_token", "F32", [1, 1, 0], 0)]
open("stoi_range.safetensors", "wb").write(st(base + [("pos_embed", "F32", [1, 5, 0], 0), ("blocks.99999999999.x", "F32", [0], 0)]))
open("depth_intmax.safetensors", "wb").write(st(base + [("pos_embed", "F32", [1, 5, 0], 0), ("blocks.2147483647.x", "F32", [0], 0)]))
open("depth_huge.safetensors", "wb").write(st(base + [("pos_embed", "F32", [1, 5, 0], 0), ("blocks.300000000.x", "F32", [0], 0)]))
open("isqrt_overflow.safetensors", "wb").write(st(base + [("pos_embed", "F32", [1, 2**63 - 1, 0], 0)]))
b2 = [("patch_embed.proj.weight", "F32", [8, 0, 4096, 4096], 0), ("blocks.0.mlp.fc1.weight", "F32", [16, 0], 0),
      ("cls_token", "F32", [1, 1, 0], 0)]
open("grid_overflow.safetensors", "wb").write(st(b2 + [("pos_embed", "F32", [1, 2**40 + 1, 0], 0)]))
open("regex_deep.safetensors", "wb").write(st(base + [("pos_embed", "F32", [1, 5, 0], 0), ("blocks.0." + "1" * 200000, "F32", [0], 0)]))
open("hidden_trunc.safetensors", "wb").write(st([("patch_embed.proj.weight", "F32", [2**32 + 8, 0, 4, 4], 0)] + base[1:] + [("pos_embed", "F32", [1, 5, 0], 0)]))
open("regex_deep2.safetensors", "wb").write(st(base + [("pos_embed", "F32", [1, 5, 0], 0), ("blocks." + "1" * 100000 + ".ls1.gamma", "F32", [0], 0)]))
