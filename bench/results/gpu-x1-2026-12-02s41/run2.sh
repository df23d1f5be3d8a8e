#!/usr/bin/env bash
# Session 41, call 2: D inside the clustered backward, design 4 (each rank forms half of a step's
# rows from O staged in the scratch and sends them to the peer by st.async), default checks and
# variants of bench/results/gpu-x1-2026-12-02s41/cl_dd.sh.
TAG=s41c2 DCP_GZ=.s41/dcp.gz timeout 590 bash bench/results/gpu-x1-2026-12-02s41/cl_dd.sh
