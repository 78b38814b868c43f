// Fixture of tests/lint.cmake: a backend header including its entry point (check_layers must fail).
#pragma once
#include "gpu/cuda_engine.h"
