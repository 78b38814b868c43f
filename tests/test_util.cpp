// vit-infer tests: shared helpers.
#include "test_util.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <mutex>

namespace vit::test {

namespace fs = std::filesystem;

std::string data_path(const std::string& rel) { return std::string(VIT_TEST_DATA) + "/" + rel; }

namespace {
struct TempRoot {
  fs::path root;
  TempRoot() {
    std::string tmpl = (fs::temp_directory_path() / "vit-test-XXXXXX").string();
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (char* p = mkdtemp(buf.data())) root = p;
  }
  ~TempRoot() {
    std::error_code ec;
    if (!root.empty()) fs::remove_all(root, ec);
  }
};
TempRoot& temp_root() {
  static TempRoot r;
  return r;
}
}  // namespace

std::string temp_dir() {
  static std::atomic<int> counter{0};
  fs::path p = temp_root().root / ("d" + std::to_string(counter++));
  fs::create_directories(p);
  return p.string();
}

void write_file(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

namespace {
// One generator for the process, seeded fresh each run; callers hold rng_mutex().
std::mutex& rng_mutex() {
  static std::mutex mu;
  return mu;
}
std::mt19937_64& rng() {
  static std::mt19937_64 r(std::random_device{}());
  return r;
}
}  // namespace

std::vector<float> random_vec(size_t n, float lo, float hi) {
  std::lock_guard<std::mutex> lock(rng_mutex());
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng());
  return v;
}

std::vector<uint8_t> random_bytes(size_t n) {
  std::lock_guard<std::mutex> lock(rng_mutex());
  std::uniform_int_distribution<int> dist(0, 255);
  std::vector<uint8_t> v(n);
  for (auto& x : v) x = static_cast<uint8_t>(dist(rng()));
  return v;
}

Tensor random_tensor(std::vector<int64_t> shape, float lo, float hi) {
  Tensor t(std::move(shape));
  t.data = random_vec(t.data.size(), lo, hi);
  return t;
}

void write_npy_raw(const std::string& path, const std::string& descr, bool fortran,
                   const std::vector<int64_t>& shape, const std::vector<uint8_t>& payload) {
  std::string shp = "(";
  for (int64_t d : shape) shp += std::to_string(d) + ", ";
  shp += ")";
  std::string header = "{'descr': '" + descr + "', 'fortran_order': " + (fortran ? "True" : "False") +
                       ", 'shape': " + shp + ", }";
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';  // magic 6 + version 2 + length 2
  header += '\n';
  std::string f = "\x93NUMPY";
  f += '\x01';
  f += '\x00';
  f += static_cast<char>(header.size() & 0xff);
  f += static_cast<char>(header.size() >> 8);
  f += header;
  f.append(reinterpret_cast<const char*>(payload.data()), payload.size());
  write_file(path, std::vector<uint8_t>(f.begin(), f.end()));
}

float max_abs(const float* a, size_t n) {
  float m = 0.0f;
  for (size_t i = 0; i < n; ++i) m = std::max(m, std::fabs(a[i]));
  return m;
}

float max_abs_diff(const float* a, const float* b, size_t n) {
  float m = 0.0f;
  for (size_t i = 0; i < n; ++i) {
    const float d = std::fabs(a[i] - b[i]);
    if (std::isnan(d)) return INFINITY;
    m = std::max(m, d);
  }
  return m;
}

}  // namespace vit::test
