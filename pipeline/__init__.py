"""pipeline"""

import os as _os

# The task never calls BLAS, but numpy (imported by pyarrow and the converters) starts OpenBLAS's
# thread pool, whose idle threads cost CPU the two-core task needs (measured: 50-100 ms per
# million records). A caller that wants BLAS threads sets the variable itself.
_os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
