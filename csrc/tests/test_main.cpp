// knet_core_tests: runs every KNET_TEST registered in csrc/tests/*.cpp (see harness.h).
// Usage: knet_core_tests [name-substring]
#include "tests/harness.h"

int main(int argc, char** argv) { return knet_test::run_all(argc > 1 ? argv[1] : nullptr); }
