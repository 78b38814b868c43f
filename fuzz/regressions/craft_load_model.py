# vit-infer fuzzing: writes the hand-made fuzz_load_model regression inputs (hostile
# .safetensors headers whose tensors are mostly zero-sized, so absurd shapes cost no bytes).
# Each once crashed load_model or tripped a sanitizer; all must now fail with vit::Error.
# Usage: cd fuzz/regressions/fuzz_load_model && python3 ../craft_load_model.py
import json, struct


def st(entries):
    # entries: list of (name, dtype, shape); data: zeros, numel * 4 bytes (F32).
    hdr, off = {}, 0
    for n, dt, sh in entries:
        nb = 4
        for d in sh:
            nb *= d
        hdr[n] = {"dtype": dt, "shape": sh, "data_offsets": [off, off + nb]}
        off += nb
    h = json.dumps(hdr, separators=(",", ":")).encode()
    return struct.pack("<Q", len(h)) + h + bytes(off)


def write(name, entries):
    with open(name, "wb") as f:
        f.write(st(entries))


def base(ci, patch=4):
    # in_chans 0 (ci=0) keeps the file tiny but is itself rejected now; ci=3 reaches the
    # later checks (position table, run size) as the original crashes did.
    return [("patch_embed.proj.weight", "F32", [8, ci, patch, patch]), ("blocks.0.mlp.fc1.weight", "F32", [16, 0]),
            ("cls_token", "F32", [1, 1, 0])]


pos5 = [("pos_embed", "F32", [1, 5, 0])]
# std::stoi out_of_range / int overflow of block indices.
write("block_index_11_digits.safetensors", base(0) + pos5 + [("blocks.99999999999.x", "F32", [0])])
write("block_index_intmax.safetensors", base(0) + pos5 + [("blocks.2147483647.x", "F32", [0])])
write("block_index_3e8.safetensors", base(0) + pos5 + [("blocks.300000000.x", "F32", [0])])
# isqrt_exact squared ~3e9 in int64 (UBSan).
write("isqrt_int64_overflow.safetensors", base(0) + [("pos_embed", "F32", [1, 2**63 - 1, 0])])
write("isqrt_int64_overflow_c3.safetensors", base(3) + [("pos_embed", "F32", [1, 2**63 - 1, 0])])
# ckpt_grid_h * patch in int (UBSan): patch 4096, grid 2^20.
write("grid_times_patch_int_overflow.safetensors", base(0, 4096) + [("pos_embed", "F32", [1, 2**40 + 1, 0])])
# The largest accepted position table (256x256 grid) at patch 64: a 16384-pixel input.
write("grid_256_patch_64.safetensors", [("patch_embed.proj.weight", "F32", [1, 1, 64, 64])] + base(0)[1:] +
      [("pos_embed", "F32", [1, 256 * 256 + 1, 0])])
# Width 2^32 + 8 once truncated to 8 by the int cast.
write("hidden_int_truncation.safetensors",
      [("patch_embed.proj.weight", "F32", [2**32 + 8, 0, 4, 4])] + base(0)[1:] + pos5)
# std::regex_match recursed once per character of the block index (stack overflow).
write("regex_stack_overflow.safetensors", base(0) + pos5 + [("blocks." + "1" * 100000 + ".ls1.gamma", "F32", [0])])
