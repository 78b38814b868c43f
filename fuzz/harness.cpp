// vit-infer fuzzing: the per-parser entry points declared in harness.h. File-based parsers
// get their input through a per-process scratch directory (on /dev/shm when present, so
// the fuzz loop does not touch the disk); the directory is removed at exit.
#include "harness.h"

#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "image/decode.h"
#include "io/npy.h"
#include "io/npz.h"
#include "io/safetensors.h"
#include "model/config_sources.h"
#include "model/model.h"

namespace vit::fuzz {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// A self-check failed: stop the way a sanitizer would, so libFuzzer saves the input.
[[noreturn]] void check_failed(const char* what) {
  std::fprintf(stderr, "fuzz self-check failed: %s\n", what);
  std::fflush(stderr);
  __builtin_trap();
}

struct Scratch {
  std::string dir;
  Scratch() {
    const char* base = ::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    std::string tmpl = std::string(base) + "/vit-fuzz-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) {
      std::perror("vit-fuzz: mkdtemp");
      check_failed("cannot create a scratch directory");
    }
    dir = tmpl;
  }
  ~Scratch() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
};

const std::string& scratch() {
  static Scratch s;
  return s.dir;
}

void write_bytes(const std::string& path, const uint8_t* data, size_t size) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) check_failed("cannot create a scratch file");
  if (size > 0 && std::fwrite(data, 1, size, f) != size) check_failed("cannot write a scratch file");
  if (std::fclose(f) != 0) check_failed("cannot close a scratch file");
}

// Reads every tensor of an opened file; unsupported dtypes are a vit::Error per tensor.
void read_all(const SafetensorsFile& f) {
  for (const std::string& n : f.names()) {
    try {
      const Tensor t = f.read(n);
      if (static_cast<int64_t>(t.data.size()) != t.numel()) check_failed("safetensors read(): size != numel");
    } catch (const Error&) {
    }
  }
}

// A tiny valid timm checkpoint (D 8, depth 1, 2 heads, patch 4 at 8x8: 4 patches, 3 classes),
// written once into `dir`, so that config.json fuzzing reaches the whole loader.
void write_tiny_timm(const std::string& path) {
  const int64_t D = 8, I = 16, P = 4, C = 3, T = 5;
  std::map<std::string, Tensor> ts;
  auto add = [&](const std::string& n, std::vector<int64_t> s) {
    Tensor t(std::move(s));
    for (size_t i = 0; i < t.data.size(); ++i) t.data[i] = 0.01f * static_cast<float>(i % 17) - 0.05f;
    ts.emplace(n, std::move(t));
  };
  add("cls_token", {1, 1, D});
  add("pos_embed", {1, T, D});
  add("patch_embed.proj.weight", {D, 3, P, P});
  add("patch_embed.proj.bias", {D});
  add("blocks.0.norm1.weight", {D});
  add("blocks.0.norm1.bias", {D});
  add("blocks.0.attn.qkv.weight", {3 * D, D});
  add("blocks.0.attn.qkv.bias", {3 * D});
  add("blocks.0.attn.proj.weight", {D, D});
  add("blocks.0.attn.proj.bias", {D});
  add("blocks.0.norm2.weight", {D});
  add("blocks.0.norm2.bias", {D});
  add("blocks.0.mlp.fc1.weight", {I, D});
  add("blocks.0.mlp.fc1.bias", {I});
  add("blocks.0.mlp.fc2.weight", {D, I});
  add("blocks.0.mlp.fc2.bias", {D});
  add("norm.weight", {D});
  add("norm.bias", {D});
  add("head.weight", {C, D});
  add("head.bias", {C});
  std::vector<std::pair<std::string, const Tensor*>> list;
  for (const auto& [n, t] : ts) list.emplace_back(n, &t);
  write_safetensors(path, list);
}

// Sanity of a model load_model accepted: the shapes the engines will index by.
void check_model(const Model& m) {
  const ViTConfig& c = m.cfg;
  if (c.hidden <= 0 || c.heads <= 0 || c.hidden % c.heads != 0 || c.depth <= 0 || c.patch <= 0)
    check_failed("load_model accepted a degenerate config");
  if (static_cast<int>(m.w.blocks.size()) != c.depth) check_failed("load_model: blocks.size() != depth");
  if (m.w.pos.numel() != static_cast<int64_t>(c.tokens()) * c.hidden) check_failed("load_model: pos != [T, D]");
  if (m.w.cls.numel() != c.hidden) check_failed("load_model: cls != [D]");
}

}  // namespace

void safetensors_header(const uint8_t* data, size_t size) {
  // Size the data buffer from the JSON itself (when it parses) so valid headers reach read().
  uint64_t buf = 0;
  const json j = json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (j.is_object()) {
    for (const auto& [k, v] : j.items()) {
      if (!v.is_object() || !v.contains("data_offsets")) continue;
      const json& o = v["data_offsets"];
      if (o.is_array() && o.size() == 2 && o[1].is_number_unsigned()) buf = std::max(buf, o[1].get<uint64_t>());
    }
  }
  buf = std::min<uint64_t>(buf, 1 << 20);
  std::vector<uint8_t> file(8 + size + buf);
  for (int i = 0; i < 8; ++i) file[i] = static_cast<uint8_t>(static_cast<uint64_t>(size) >> (8 * i));
  if (size > 0) std::memcpy(file.data() + 8, data, size);
  for (uint64_t i = 0; i < buf; ++i) file[8 + size + i] = static_cast<uint8_t>(i * 37 + 11);
  safetensors_file(file.data(), file.size());
}

void safetensors_file(const uint8_t* data, size_t size) {
  const std::string path = scratch() + "/in.safetensors";
  write_bytes(path, data, size);
  try {
    const SafetensorsFile f(path);
    read_all(f);
  } catch (const Error&) {
  }
}

void npy(const uint8_t* data, size_t size) {
  Tensor t;
  try {
    t = parse_npy(data, size, "fuzz.npy");
  } catch (const Error&) {
    return;
  }
  if (static_cast<int64_t>(t.data.size()) != t.numel()) check_failed("parse_npy: size != numel");
  // What we read we must be able to write and read back bit for bit.
  const std::vector<uint8_t> again = encode_npy(t.ptr(), t.shape);
  const Tensor u = parse_npy(again.data(), again.size(), "fuzz.npy re-encoded");
  if (u.shape != t.shape || (!t.data.empty() && std::memcmp(u.ptr(), t.ptr(), t.data.size() * 4) != 0))
    check_failed("parse_npy(encode_npy(x)) != x");
}

void npz(const uint8_t* data, size_t size) {
  const std::string path = scratch() + "/in.npz";
  write_bytes(path, data, size);
  try {
    const auto arrays = read_npz(path);
    for (const auto& [k, t] : arrays)
      if (static_cast<int64_t>(t.data.size()) != t.numel()) check_failed("read_npz: size != numel");
  } catch (const Error&) {
  }
}

void config_json(const uint8_t* data, size_t size) {
  static const std::string dir = [] {
    const std::string d = scratch() + "/cfgmodel";
    fs::create_directories(d);
    write_tiny_timm(d + "/model.safetensors");
    return d;
  }();
  const std::string cfg = dir + "/config.json";
  const std::string pre = dir + "/preprocessor_config.json";
  write_bytes(cfg, data, size);
  json j;
  try {
    j = detail::read_json_file(cfg);
  } catch (const Error&) {
    return;  // load_model would only repeat the same JSON error
  }
  try {
    (void)detail::parse_config_json(j, "fuzz/config.json");
  } catch (const Error&) {
  }
  try {  // the same text as open_clip's open_clip_config.json
    (void)detail::parse_open_clip_config(j, "fuzz/open_clip_config.json");
  } catch (const Error&) {
  }
  try {
    PreprocessConfig pp = detail::hf_default_preprocess(224, 224);
    std::vector<std::string> warnings;
    detail::apply_hf_preprocessor(j, "fuzz/preprocessor_config.json", &pp, &warnings);
  } catch (const Error&) {
  }
  // The same text as both config files: load_model reads preprocessor_config.json for
  // non-timm configs, config.json always.
  write_bytes(pre, data, size);
  try {
    const auto m = vit::load_model(dir);
    check_model(*m);
  } catch (const Error&) {
  }
  fs::remove(pre);
}

void load_model(const uint8_t* data, size_t size) {
  static const std::string dir = [] {
    const std::string d = scratch() + "/model";
    fs::create_directories(d);
    return d;
  }();
  const bool zip = size >= 2 && data[0] == 'P' && data[1] == 'K';
  const std::string path = dir + (zip ? "/model.npz" : "/model.safetensors");
  write_bytes(path, data, size);
  try {
    try {
      check_model(*vit::load_model(path));
    } catch (const Error& e) {
      // Widths outside the standard table need a head count (no config.json here); retry
      // with one so the tiny seed checkpoints (D 8) get past that check into the mapping.
      if (e.code() != ErrorCode::kInvalidArgument) throw;
      ConfigOverrides ov;
      ov.heads = 2;
      check_model(*vit::load_model(path, ov));
    }
  } catch (const Error&) {
  }
  fs::remove(path);
}

void image(const uint8_t* data, size_t size) {
  // A smaller pixel limit than the default keeps each run fast; the limit check itself is
  // the same code whatever the number.
  DecodeLimits lim;
  lim.max_pixels = 1 << 22;
  try {
    const Image img = decode_image_memory(data, size, "fuzz image", lim);
    if (img.w <= 0 || img.h <= 0 || img.rgb.size() != static_cast<size_t>(img.w) * img.h * 3)
      check_failed("decode_image_memory: rgb size != w*h*3");
  } catch (const Error&) {
  }
}

const std::vector<Target>& targets() {
  static const std::vector<Target> t = {
      {"fuzz_safetensors_header", safetensors_header},
      {"fuzz_safetensors_file", safetensors_file},
      {"fuzz_npy", npy},
      {"fuzz_npz", npz},
      {"fuzz_config_json", config_json},
      {"fuzz_load_model", load_model},
      {"fuzz_image", image},
  };
  return t;
}

}  // namespace vit::fuzz
