// The skeleton as a plug-in: libdizuo_skeleton_backend.so, loaded with --backend-lib. This one line
// is all a backend needs to be shipped out of tree.
#include "backends/skeleton/skeleton_backend.h"

DIZUO_BACKEND_PLUGIN(DIZUO_SKELETON_NAME, dizuo::CreateSkeletonBackend)
