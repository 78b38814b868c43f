// vit-infer tests: resample_pos_embed against timm's resample_abs_pos_embed, and (hf_* cases,
// PosResample::kHF) against HF's interpolate_pos_encoding (fixtures from
// tools/make_resample_fixtures.py: [1 + gh*gw, D] in, [1 + nh*nw, D] out, fp32).
#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "io/npy.h"
#include "model/model.h"
#include "test_util.h"

namespace vit {
namespace {

// The fixtures are fp32 results of torch's float kernel; we accumulate in double. The two
// differ by float rounding of O(10) terms of magnitude ~1: well under 1e-5.
constexpr float kTol = 1e-5f;

void check_case(const std::string& name, int gh, int gw, int nh, int nw, PosResample rule = PosResample::kTimm) {
  const Tensor in = read_npy(test::data_path("resample/" + name + "_in.npy"));
  const Tensor want = read_npy(test::data_path("resample/" + name + "_out.npy"));
  ASSERT_EQ(in.shape.size(), 2u);
  ASSERT_EQ(in.shape[0], 1 + gh * gw);
  ASSERT_EQ(want.shape[0], 1 + nh * nw);
  const Tensor got = resample_pos_embed(in, gh, gw, nh, nw, 1, rule);
  ASSERT_EQ(got.shape, want.shape);
  ASSERT_GT(test::max_abs(want.ptr(), want.data.size()), 0.1f);
  EXPECT_LE(test::max_abs_diff(got.ptr(), want.ptr(), want.data.size()), kTol) << name;
  // cls row is copied untouched
  for (int64_t d = 0; d < in.shape[1]; ++d) EXPECT_EQ(got.data[d], in.data[d]);
}

TEST(ResamplePosEmbed, MatchesTimmUpsample4to6) { check_case("up_4x4_6x6", 4, 4, 6, 6); }
TEST(ResamplePosEmbed, MatchesTimmUpsample14to24) { check_case("up_14x14_24x24", 14, 14, 24, 24); }
TEST(ResamplePosEmbed, MatchesTimmDownsample7to3x5) { check_case("down_7x7_3x5", 7, 7, 3, 5); }

TEST(ResamplePosEmbed, MatchesHfUpsample4to6) { check_case("hf_up_4x4_6x6", 4, 4, 6, 6, PosResample::kHF); }
TEST(ResamplePosEmbed, MatchesHfUpsample14to37) { check_case("hf_up_14x14_37x37", 14, 14, 37, 37, PosResample::kHF); }
TEST(ResamplePosEmbed, MatchesHfDownsample7to3x5) { check_case("hf_down_7x7_3x5", 7, 7, 3, 5, PosResample::kHF); }
TEST(ResamplePosEmbed, MatchesHfMixed5x4to2x11) { check_case("hf_mixed_5x4_2x11", 5, 4, 2, 11, PosResample::kHF); }

// The two rules are different numbers on the same table (so a fixture cannot pass with the
// wrong one): antialias changes the kernel's a (-0.5 vs -0.75) and, downscaling, its support.
TEST(ResamplePosEmbed, HfAndTimmRulesDiffer) {
  for (const char* name : {"hf_up_4x4_6x6", "hf_down_7x7_3x5"}) {
    const bool up = std::string(name) == "hf_up_4x4_6x6";
    const Tensor in = read_npy(test::data_path(std::string("resample/") + name + "_in.npy"));
    const int g = up ? 4 : 7, nh = up ? 6 : 3, nw = up ? 6 : 5;
    const Tensor a = resample_pos_embed(in, g, g, nh, nw, 1, PosResample::kHF);
    const Tensor b = resample_pos_embed(in, g, g, nh, nw, 1, PosResample::kTimm);
    EXPECT_GT(test::max_abs_diff(a.ptr(), b.ptr(), a.data.size()), 100 * kTol) << name;
  }
}

TEST(ResamplePosEmbed, SameGridIsIdentity) {
  const Tensor in = test::random_tensor({1 + 3 * 5, 7});
  const Tensor out = resample_pos_embed(in, 3, 5, 3, 5);
  EXPECT_EQ(out.shape, in.shape);
  EXPECT_EQ(out.data, in.data);
}

// Normalised antialiased weights: a grid constant per channel stays constant at any size.
TEST(ResamplePosEmbed, ConstantGridStaysConstant) {
  const int64_t D = 3;
  const std::vector<float> c = test::random_vec(D);
  Tensor in({1 + 5 * 4, D});
  for (int64_t t = 0; t < in.shape[0]; ++t)
    for (int64_t d = 0; d < D; ++d) in.data[t * D + d] = c[d];
  for (auto [nh, nw] : {std::pair{9, 2}, std::pair{2, 11}, std::pair{1, 1}}) {
    const Tensor out = resample_pos_embed(in, 5, 4, nh, nw);
    ASSERT_EQ(out.shape[0], 1 + nh * nw);
    for (int64_t t = 0; t < out.shape[0]; ++t)
      for (int64_t d = 0; d < D; ++d) EXPECT_NEAR(out.data[t * D + d], c[d], 1e-6f);
  }
}

TEST(ResamplePosEmbed, Errors) {
  const Tensor in = test::random_tensor({1 + 9, 4});
  try {
    resample_pos_embed(in, 4, 4, 6, 6);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("[10, 4]"), std::string::npos) << e.what();
  }
  EXPECT_THROW(resample_pos_embed(in, 3, 3, 0, 6), Error);
}

}  // namespace
}  // namespace vit
