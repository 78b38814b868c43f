# Source-structure checks (issue 23), cheap (well under a second each): includes only point down
# the floors (tools/check_layers.py), no src/ file over 900 lines and no function over 150
# (tools/check_sizes.py).
find_package(Python3 COMPONENTS Interpreter QUIET)
set(VIT_LINT_PYTHON ${Python3_EXECUTABLE})
if(NOT VIT_LINT_PYTHON)
  set(VIT_LINT_PYTHON python3)
endif()
add_test(NAME lint.IncludeLayers COMMAND ${VIT_LINT_PYTHON} ${PROJECT_SOURCE_DIR}/tools/check_layers.py ${PROJECT_SOURCE_DIR})
# The checks fail where they should: a fixture tree with two arrows up and a 152-line function.
add_test(NAME lint.IncludeLayersCatchesArrowsUp COMMAND ${VIT_LINT_PYTHON} ${PROJECT_SOURCE_DIR}/tools/check_layers.py ${VIT_TEST_DATA}/lint)
set_tests_properties(lint.IncludeLayersCatchesArrowsUp PROPERTIES PASS_REGULAR_EXPRESSION "check_layers: 2 arrow")
add_test(NAME lint.SizesCatchesLongFunctions COMMAND ${VIT_LINT_PYTHON} ${PROJECT_SOURCE_DIR}/tools/check_sizes.py ${VIT_TEST_DATA}/lint)
set_tests_properties(lint.SizesCatchesLongFunctions PROPERTIES PASS_REGULAR_EXPRESSION "long_function is 152 lines")
