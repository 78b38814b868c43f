# vit-infer CLI tests: a GoogleTest driver that runs the program (cli_runner), plus plain ctest
# checks of the program itself.
vit_add_test(test_cli test_cli.cpp cli_runner.cpp model_fixture.cpp LIBS vit_cpu vit_golden_cases)
target_compile_definitions(test_cli PRIVATE VIT_INFER_BIN="$<TARGET_FILE:vit-infer>")
add_dependencies(test_cli vit-infer)

add_test(NAME cli_version COMMAND $<TARGET_FILE:vit-infer> --version)
set_tests_properties(cli_version PROPERTIES PASS_REGULAR_EXPRESSION "^vit-infer [0-9]+\\.[0-9]+\\.[0-9]+")
add_test(NAME cli_help COMMAND $<TARGET_FILE:vit-infer> classify --help)
set_tests_properties(cli_help PROPERTIES PASS_REGULAR_EXPRESSION "--logits-out")
add_test(NAME cli_missing_model COMMAND $<TARGET_FILE:vit-infer> info --model /nonexistent/vit-model)
set_tests_properties(cli_missing_model PROPERTIES WILL_FAIL TRUE)

# libvit exports the C API and nothing else (src/api/vit.map).
add_test(NAME libvit_exports_only_c_api
         COMMAND sh -c "nm -D --defined-only \"$1\" | awk '{print $3}' | grep -v '^vit_' | grep . && exit 1; nm -D --defined-only \"$1\" | grep -q ' vit_session_run$'"
                 sh $<TARGET_FILE:vit>)

# `vit-infer bench` hands its arguments to vit-bench (built only with CUDA).
if(TARGET vit-bench)
  add_test(NAME cli_bench_passthrough COMMAND $<TARGET_FILE:vit-infer> bench --help)
  set_tests_properties(cli_bench_passthrough PROPERTIES PASS_REGULAR_EXPRESSION "--precision")
else()
  add_test(NAME cli_bench_without_cuda COMMAND $<TARGET_FILE:vit-infer> bench --batch 1)
  set_tests_properties(cli_bench_without_cuda PROPERTIES WILL_FAIL TRUE)
endif()
