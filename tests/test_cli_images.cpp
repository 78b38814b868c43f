// vit-infer tests: `vit-infer classify` on image files, run as a subprocess.
// Directories of mixed good and bad files (recursive, sorted, bad files reported as JSON
// error lines, non-zero exit), @list inputs, the default model (bundled demo model,
// $VIT_INFER_MODEL, a clear error when none is found), ImageNet-1k labels for a 1000-class
// model without labels, the progress bar only on a terminal, and the README's demo command.
// The program runs as a child process through tests/cli_runner (posix_spawn, no shell).
// Tests that need the demo model (models/demo, made by tools/train_demo.py) skip without it.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "cli_runner.h"
#include "io/npy.h"
#include "model/model.h"
#include "model_fixture.h"
#include "test_api_fixture.h"
#include "test_util.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const std::string kSrc = VIT_SOURCE_DIR;
const std::string kDemo = kSrc + "/models/demo";

// The program runs through the shared child-process runner (cli_runner.h): no shell, a 60 s
// limit per run, stdout and stderr captured separately, rc = the exit status (-1 on a signal).
using vit::test::lines;
using vit::test::Proc;
using vit::test::run_cli;
using vit::test::RunOptions;

// The environment of the test minus VIT_INFER_MODEL, so the default-model search is what runs.
RunOptions without_model_env() {
  RunOptions o;
  o.unset_env = {"VIT_INFER_MODEL"};
  return o;
}

bool demo_present() {
  return fs::exists(kDemo + "/model.safetensors") && fs::exists(kDemo + "/config.json") &&
         fs::exists(kDemo + "/samples/expected.json");
}

// samples/expected.json: file -> timm's top-1 label name and probability.
struct Expected {
  std::string label;
  double prob = 0.0;
};
std::map<std::string, Expected> expected_samples() {
  std::map<std::string, Expected> m;
  const json doc = json::parse(std::ifstream(kDemo + "/samples/expected.json"));
  for (const json& e : doc) m[e.at("file").get<std::string>()] = {e.at("pred_name"), e.at("prob").get<double>()};
  return m;
}

void copy(const std::string& from, const std::string& to) {
  fs::create_directories(fs::path(to).parent_path());
  fs::copy_file(from, to, fs::copy_options::overwrite_existing);
}

// A random 10-class model with labels class_<i> (for tests that need no demo).
const std::string& random_model_dir() {
  static const std::string dir =
      vit::test::write_random_checkpoint(vit::test::small_config(32, 32, 8, 32, 4, 1, 10), 21);
  return dir;
}

// Good images, a truncated PNG, a text file named .jpg, an empty file, a decompression bomb,
// nested one level down, plus files that must be skipped (notes, hidden). The default model
// (no --model) classifies the good ones in sorted path order and reports each bad one.
TEST(CliImages, MixedDirectoryWithDefaultModel) {
  if (!demo_present()) GTEST_SKIP() << "no demo model at " << kDemo;
  const std::string d = vit::test::temp_dir() + "/in";
  const auto exp = expected_samples();
  ASSERT_GE(exp.size(), 4u);
  auto it = exp.begin();
  const std::string s1 = it->first, s2 = (++it)->first, s3 = (++it)->first, s4 = (++it)->first;
  copy(kDemo + "/samples/" + s1, d + "/b_" + s1);
  copy(kDemo + "/samples/" + s2, d + "/sub/a_" + s2);
  copy(kDemo + "/samples/" + s3, d + "/sub/deeper/c_" + s3);
  copy(kDemo + "/samples/" + s4, d + "/" + s4 + ".noext");  // no image extension: found by content
  std::vector<uint8_t> png = vit::test::read_file(kDemo + "/samples/" + s1);
  const bool s1_png = png.size() > 8 && png[1] == 'P';
  std::vector<uint8_t> half(png.begin(), png.begin() + png.size() / 2);
  vit::test::write_file(d + "/sub/truncated" + (s1_png ? ".png" : ".jpg"), half);
  vit::test::write_file(d + "/text.jpg", {'h', 'e', 'l', 'l', 'o', '\n'});
  vit::test::write_file(d + "/empty.png", {});
  copy(vit::test::data_path("images/bomb.png"), d + "/sub/bomb.png");
  vit::test::write_file(d + "/notes.txt", {'x'});                   // skipped: not an input
  vit::test::write_file(d + "/.hidden.jpg", {'x'});                 // skipped: hidden
  copy(kDemo + "/samples/" + s1, d + "/.cache/e_" + s1);            // skipped: hidden directory

  Proc p = run_cli({"classify", "--json", "-k", "3", "--batch", "2", "--decode-threads", "3", d},
                   without_model_env());
  EXPECT_EQ(p.rc, 1) << p.err;
  EXPECT_NE(p.err.find("bundled demo model"), std::string::npos) << p.err;
  EXPECT_EQ(p.err.find('\r'), std::string::npos) << "progress bar drawn on a non-terminal";

  // Sorted by full path: "b_..." < "empty.png" < "s4.noext" < "sub/a_" < "sub/bomb" <
  // "sub/deeper/c_" < "sub/truncated" < "text.jpg".
  struct Want {
    std::string file;
    std::string label;  // empty: an error line
    std::string error_part;
  };
  std::vector<Want> want = {
      {d + "/b_" + s1, exp.at(s1).label, ""},
      {d + "/empty.png", "", "empty"},
      {d + "/" + s4 + ".noext", exp.at(s4).label, ""},
      {d + "/sub/a_" + s2, exp.at(s2).label, ""},
      {d + "/sub/bomb.png", "", "bomb"},
      {d + "/sub/deeper/c_" + s3, exp.at(s3).label, ""},
      {d + "/sub/truncated" + (s1_png ? ".png" : ".jpg"), "", ""},
      {d + "/text.jpg", "", "not a PNG or JPEG"},
  };
  auto ls = lines(p.out);
  ASSERT_EQ(ls.size(), want.size()) << p.out << "\n" << p.err;
  for (size_t i = 0; i < want.size(); ++i) {
    json j = json::parse(ls[i]);
    EXPECT_EQ(j.at("file"), want[i].file) << ls[i];
    if (want[i].label.empty()) {
      ASSERT_TRUE(j.contains("error")) << ls[i];
      EXPECT_FALSE(j.contains("topk"));
      const std::string msg = j.at("error");
      EXPECT_NE(msg.find(want[i].file), std::string::npos) << msg;  // the message names the file
      if (!want[i].error_part.empty()) EXPECT_NE(msg.find(want[i].error_part), std::string::npos) << msg;
      EXPECT_NE(p.err.find(want[i].file), std::string::npos) << "stderr does not name " << want[i].file;
    } else {
      ASSERT_TRUE(j.contains("topk")) << ls[i];
      EXPECT_FALSE(j.contains("index")) << "image results carry no row index: " << ls[i];
      ASSERT_EQ(j.at("topk").size(), 3u);
      EXPECT_EQ(j.at("topk")[0].at("label"), want[i].label) << ls[i];
    }
  }
}

// @LIST: one path per line (files or directories), comments and blank lines skipped, order
// kept; a missing list file is an error line of its own; the other inputs still run.
TEST(CliImages, ListFileInputs) {
  const std::string d = vit::test::temp_dir();
  const std::string a = vit::test::data_path("images/photo_300x200.jpg");
  const std::string b = vit::test::data_path("images/rgb_37x53.png");
  std::vector<float> x(2 * 3 * 32 * 32, 0.1f);  // [2, 3, 32, 32]
  vit::write_npy(d + "/arr.npy", x.data(), {2, 3, 32, 32});
  fs::create_directories(d + "/dir");
  copy(b, d + "/dir/z.png");
  {
    std::ofstream l(d + "/list.txt");
    l << "# inputs\n" << b << "\r\n\n  " << d << "/arr.npy  \n" << d << "/dir\n" << a << "\n";
  }
  Proc p = run_cli({"classify", "--model", random_model_dir(), "--json", "-k", "1", "@" + d + "/list.txt",
                    "@" + d + "/missing.txt", a});
  EXPECT_EQ(p.rc, 1) << p.err;
  auto ls = lines(p.out);
  const std::vector<std::string> files = {b, d + "/arr.npy", d + "/arr.npy", d + "/dir/z.png", a,
                                          "@" + d + "/missing.txt", a};
  ASSERT_EQ(ls.size(), files.size()) << p.out << p.err;
  for (size_t i = 0; i < files.size(); ++i) {
    json j = json::parse(ls[i]);
    EXPECT_EQ(j.at("file"), files[i]) << ls[i];
    EXPECT_EQ(j.contains("error"), i == 5) << ls[i];
  }
  EXPECT_EQ(json::parse(ls[1]).at("index"), 0);  // .npy rows keep their index
  EXPECT_EQ(json::parse(ls[2]).at("index"), 1);
  // The same image gives the same answer wherever it sits in the batches.
  // Rows at other batch positions may round differently inside the GEMMs: probabilities
  // agree to 1e-5 (fp32 rounding of O(1) logits).
  for (auto [x, y] : {std::pair<int, int>{0, 3}, {4, 6}}) {
    const json tx = json::parse(ls[x]).at("topk")[0], ty = json::parse(ls[y]).at("topk")[0];
    EXPECT_EQ(tx.at("index"), ty.at("index")) << ls[x] << " vs " << ls[y];
    EXPECT_NEAR(tx.at("prob").get<double>(), ty.at("prob").get<double>(), 1e-5);
  }
  EXPECT_NE(p.err.find("missing.txt"), std::string::npos) << p.err;
}

// $VIT_INFER_MODEL is the default model when set, and a copy of the program with no demo
// model beside it and none installed says so, naming where it looked.
TEST(CliImages, DefaultModelFromEnvironmentAndMissing) {
  const std::string img = vit::test::data_path("images/photo_300x200.jpg");
  RunOptions with_env;
  with_env.set_env["VIT_INFER_MODEL"] = random_model_dir();
  Proc p = run_cli({"classify", "--json", "-k", "2", img}, with_env);
  ASSERT_EQ(p.rc, 0) << p.err;
  auto ls = lines(p.out);
  ASSERT_EQ(ls.size(), 1u) << p.out;
  EXPECT_EQ(json::parse(ls[0]).at("topk")[0].at("label").get<std::string>().rfind("class_", 0), 0u) << ls[0];
  EXPECT_NE(p.err.find("VIT_INFER_MODEL"), std::string::npos) << p.err;

  // A copy of the binary in an empty tree: <exe dir>/../models/demo does not exist there.
  const std::string root = vit::test::temp_dir();
  fs::create_directories(root + "/bin");
  fs::copy_file(VIT_INFER_BIN, root + "/bin/vit-infer");
  fs::permissions(root + "/bin/vit-infer", fs::perms::owner_all);
  if (fs::exists(std::string(VIT_INSTALL_DATADIR) + "/models/demo/model.safetensors"))
    GTEST_SKIP() << "a demo model is installed at " << VIT_INSTALL_DATADIR;
  const std::string copy_bin = root + "/bin/vit-infer";
  p = vit::test::run_program(copy_bin, {"classify", img}, without_model_env());
  EXPECT_EQ(p.rc, 1) << p.err;
  EXPECT_NE(p.err.find("no default model found"), std::string::npos) << p.err;
  EXPECT_NE(p.err.find(root + "/models/demo"), std::string::npos) << p.err;
  EXPECT_NE(p.err.find("--model"), std::string::npos) << p.err;
  EXPECT_TRUE(p.out.empty()) << p.out;
  p = vit::test::run_program(copy_bin, {"info"}, without_model_env());
  EXPECT_EQ(p.rc, 1) << p.err;
}

// A 1000-class model without labels prints the ImageNet-1k names shipped in data/; --labels
// still wins.
TEST(CliImages, ImageNetLabelsForUnlabelled1000ClassModel) {
  const std::string d =
      vit::test::write_random_checkpoint(vit::test::small_config(32, 32, 8, 32, 4, 1, 1000), 3, /*with_labels=*/false);
  std::vector<std::string> names;
  {
    std::ifstream f(kSrc + "/data/imagenet1k_labels.txt");
    for (std::string l; std::getline(f, l);) names.push_back(l);
  }
  ASSERT_EQ(names.size(), 1000u);
  EXPECT_EQ(names[0], "tench, Tinca tinca");
  EXPECT_EQ(names[207], "golden retriever");
  const std::string img = vit::test::data_path("images/photo_300x200.jpg");
  Proc p = run_cli({"classify", "--model", d, "--json", "-k", "5", img});
  ASSERT_EQ(p.rc, 0) << p.err;
  json j = json::parse(lines(p.out).at(0));
  ASSERT_EQ(j.at("topk").size(), 5u);
  for (const json& t : j.at("topk")) EXPECT_EQ(t.at("label"), names.at(t.at("index").get<size_t>())) << t;
  EXPECT_NE(p.err.find("ImageNet-1k"), std::string::npos) << p.err;

  const std::string labels = d + "/mine.txt";
  {
    std::ofstream f(labels);
    for (int i = 0; i < 1000; ++i) f << "mine_" << i << "\n";
  }
  p = run_cli({"classify", "--model", d, "--labels", labels, "--json", "-k", "1", img});
  ASSERT_EQ(p.rc, 0) << p.err;
  j = json::parse(lines(p.out).at(0));
  EXPECT_EQ(j.at("topk")[0].at("label"), "mine_" + std::to_string(j.at("topk")[0].at("index").get<int>()));
}

// Single-quotes s for a POSIX shell command line.
std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// The bar appears on a terminal (util-linux `script` provides one) and never otherwise.
TEST(CliImages, ProgressBarOnlyOnATerminal) {
  const std::string img = vit::test::data_path("images/photo_300x200.jpg");
  Proc p = run_cli({"classify", "--model", random_model_dir(), "--json", img, img, img});
  ASSERT_EQ(p.rc, 0) << p.err;
  EXPECT_EQ(p.err.find('\r'), std::string::npos) << p.err;
  EXPECT_EQ(p.out.find('\r'), std::string::npos) << p.out;
  EXPECT_EQ(lines(p.out).size(), 3u);
  const std::string script = vit::test::find_in_path("script");
  if (script.empty()) GTEST_SKIP() << "no `script` to provide a terminal";
  // `script -c` takes one command line and hands it to $SHELL: the only shell in this file.
  std::string cmd = shell_quote(VIT_INFER_BIN) + " classify --model " + shell_quote(random_model_dir()) + " " +
                    shell_quote(img) + " " + shell_quote(img);
  Proc t = vit::test::run_program(script, {"-qec", cmd, "/dev/null"});
  ASSERT_EQ(t.rc, 0) << t.out << t.err;
  EXPECT_NE(t.out.find("\r["), std::string::npos) << t.out;
  EXPECT_NE(t.out.find("2/2 files"), std::string::npos) << t.out;
  Proc q = vit::test::run_program(script, {"-qec", cmd + " --no-progress", "/dev/null"});
  ASSERT_EQ(q.rc, 0) << q.out << q.err;
  EXPECT_EQ(q.out.find("files "), std::string::npos) << q.out;
}

// The README's first command, from the repository root: every sample's top-1 label and
// probability as timm computed them (samples/expected.json; probabilities from fp32 logits
// that agree to ~1e-5, hence 1e-4).
TEST(CliImages, ReadmeDemoCommand) {
  if (!demo_present()) GTEST_SKIP() << "no demo model at " << kDemo;
  RunOptions at_root = without_model_env();
  at_root.cwd = kSrc;
  Proc p = run_cli({"classify", "--top-k", "5", "models/demo/samples"}, at_root);
  ASSERT_EQ(p.rc, 0) << p.err;
  const auto exp = expected_samples();
  auto ls = lines(p.out);
  ASSERT_EQ(ls.size(), 1 + 5 * exp.size()) << p.out;
  EXPECT_EQ(ls[0], "input\trow\trank\tclass\tprob\tlabel");
  size_t i = 1;
  for (const auto& [file, e] : exp) {  // std::map: sorted like the directory listing
    std::vector<std::string> cols;
    std::stringstream ss(ls[i]);
    for (std::string c; std::getline(ss, c, '\t');) cols.push_back(c);
    ASSERT_EQ(cols.size(), 6u) << ls[i];
    EXPECT_EQ(cols[0], "models/demo/samples/" + file);
    EXPECT_EQ(cols[2], "1");
    EXPECT_EQ(cols[5], e.label) << ls[i];
    EXPECT_NEAR(std::stod(cols[4]), e.prob, 1e-4) << ls[i];
    i += 5;
  }
}

// --device cuda sends raw RGB8 through vit_session_run_images; same answers as timm.
TEST(CliImages, CudaDeviceRawImages) {
  if (!demo_present()) GTEST_SKIP() << "no demo model at " << kDemo;
  Proc p = run_cli({"classify", "--device", "cuda", "--json", "-k", "1", kDemo + "/samples"}, without_model_env());
  if (p.rc != 0 && (p.err.find("no CUDA device") != std::string::npos ||
                    p.err.find("without CUDA") != std::string::npos))
    GTEST_SKIP() << "no CUDA device";
  ASSERT_EQ(p.rc, 0) << p.err;
  const auto exp = expected_samples();
  auto ls = lines(p.out);
  ASSERT_EQ(ls.size(), exp.size());
  size_t i = 0;
  for (const auto& [file, e] : exp) {
    json j = json::parse(ls[i++]);
    EXPECT_EQ(j.at("file"), kDemo + "/samples/" + file);
    EXPECT_EQ(j.at("topk")[0].at("label"), e.label) << j;
    EXPECT_NEAR(j.at("topk")[0].at("prob").get<double>(), e.prob, 1e-3) << j;
  }
}

}  // namespace
