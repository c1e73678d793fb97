"""The search tests run faiss on one OpenMP thread (as the server's worker does): on a busy 2-core machine idle
OpenMP threads spin-wait, and small searches got tens of times slower with two."""
from __future__ import annotations

import faiss
import pytest


@pytest.fixture(autouse=True, scope="module")
def one_faiss_thread():
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)
