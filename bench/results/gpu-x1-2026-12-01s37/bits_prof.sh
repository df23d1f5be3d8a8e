# usage: source bits_prof.sh; mk_bits_prof SRC DST [MV]  (a bwd_prof.py kernel dir whose slot 5 is
# the clock once the step's mask bits are in registers, instead of after the dQ of the step before)
mk_bits_prof() {
  python3 bench/gpu/bwd_prof.py "$1" "$2" >/dev/null
  sed -i 's/^\(\s*\)PFS(p, 5);$/\1\/\/ (slot 5: PF_BITS_STAMP)/' "$2/attn_bwd_sm90.cu"
  sed -i '1i #define PF_BITS_STAMP(b) do { if (PF_ON(p)) { unsigned int c_; asm volatile("mov.u32 %0, %%clock;" : "=r"(c_) : "r"(b)); g_pf[pf_sm][cw][p][5] = c_; } } while (0)' "$2/attn_bwd_sm90.cu"
  if [ -n "${3:-}" ]; then sed -i "1i #define BWD_T_MV $3" "$2/bwd_sm90.cuh"; fi
}
