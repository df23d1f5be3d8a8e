#!/bin/bash
# usage: suite.sh bin -> rows "topo bin planner what Ir"
for t in 4x8 16x8; do for p in ring zigzag usp dcp; do for w in val plan; do /tmp/d17/cg.sh $1 $t $p $w; done; done; done
