# Replays every fuzz seed/corpus file and every fixed crash (fuzz/corpus, fuzz/regressions)
# through the same harness the libFuzzer targets use; runs in the plain and sanitizer builds.
if(TARGET vit_image)
  vit_add_test(test_fuzz_regressions test_fuzz_regressions.cpp ../fuzz/harness.cpp LIBS vit_model vit_image)
  target_include_directories(test_fuzz_regressions PRIVATE ${PROJECT_SOURCE_DIR}/fuzz)
endif()
