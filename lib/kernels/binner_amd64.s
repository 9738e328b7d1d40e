#include "textflag.h"

// func binAVX2(xs []float64, table []uint32, cellEdge []float64, lo, scale, maxF float64, missing int, counts []int64)
//
// Per group of four values x (one per lane):
//   f    = min(max((x - lo) * scale, 0), maxF)   NaN -> 0
//   c    = int32(f)                              grid cell
//   k    = table[c] + (x >= cellEdge[c])         bin
//   k    = missing if x - x != 0                 NaN, +Inf, -Inf
//   counts[lane*(missing+1) + k]++
TEXT ·binAVX2(SB), NOSPLIT, $0-128
	MOVQ xs_base+0(FP), SI
	MOVQ xs_len+8(FP), CX
	MOVQ table_base+24(FP), R8
	MOVQ cellEdge_base+48(FP), R9
	MOVQ counts_base+104(FP), R10

	VBROADCASTSD lo+72(FP), Y8
	VBROADCASTSD scale+80(FP), Y9
	VBROADCASTSD maxF+88(FP), Y11
	VXORPD       Y10, Y10, Y10
	VPBROADCASTD missing+96(FP), X13

	// X14 = lane offsets {0, s, 2s, 3s} with s = missing+1.
	MOVQ    missing+96(FP), AX
	INCQ    AX
	VPXOR   X14, X14, X14
	VPINSRD $1, AX, X14, X14
	LEAQ    (AX)(AX*1), BX
	VPINSRD $2, BX, X14, X14
	ADDQ    AX, BX
	VPINSRD $3, BX, X14, X14

	SHRQ $2, CX
	JZ   done

loop:
	VMOVUPD (SI), Y0

	// Grid cell.
	VSUBPD     Y8, Y0, Y1
	VMULPD     Y9, Y1, Y1
	VMAXPD     Y10, Y1, Y1       // NaN -> 0 (second source on unordered)
	VMINPD     Y11, Y1, Y1
	VCVTTPD2DQY Y1, X1

	// table[c] and cellEdge[c].
	VPCMPEQD   X3, X3, X3
	VPGATHERDD X3, (R8)(X1*4), X2
	VPCMPEQD   Y5, Y5, Y5
	VGATHERDPD Y5, (R9)(X1*8), Y4

	// k += x >= cellEdge[c]: pack the four 64-bit masks into 32-bit lanes.
	VCMPPD       $13, Y4, Y0, Y6
	VEXTRACTF128 $1, Y6, X12
	VSHUFPS      $0x88, X12, X6, X6
	VPSUBD       X6, X2, X2

	// Non-finite values go to slot missing.
	VSUBPD       Y0, Y0, Y7
	VCMPPD       $4, Y10, Y7, Y7
	VEXTRACTF128 $1, Y7, X12
	VSHUFPS      $0x88, X12, X7, X7
	VBLENDVPS    X7, X13, X2, X2

	// One sub-histogram per lane.
	VPADDD  X14, X2, X2
	VMOVD   X2, AX
	VPEXTRD $1, X2, BX
	VPEXTRD $2, X2, DX
	VPEXTRD $3, X2, DI
	INCQ    (R10)(AX*8)
	INCQ    (R10)(BX*8)
	INCQ    (R10)(DX*8)
	INCQ    (R10)(DI*8)

	ADDQ $32, SI
	DECQ CX
	JNZ  loop

done:
	VZEROUPPER
	RET

// func binCmpAVX2(xs []float64, edges4 []float64, nEdges, missing int, counts []int64)
//
// Few edges: k = (x >= e[0]) + ... + (x >= e[nEdges-1]), four values at a
// time; edges4 holds every edge four times (one per lane). Non-finite values
// go to slot missing; lane l counts into counts[l*(missing+1):].
TEXT ·binCmpAVX2(SB), NOSPLIT, $0-88
	MOVQ xs_base+0(FP), SI
	MOVQ xs_len+8(FP), CX
	MOVQ edges4_base+24(FP), R8
	MOVQ nEdges+48(FP), R9
	MOVQ counts_base+64(FP), R10

	VXORPD       Y10, Y10, Y10
	VPBROADCASTQ missing+56(FP), Y13

	// Y14 = lane offsets {0, s, 2s, 3s} with s = missing+1.
	MOVQ    missing+56(FP), AX
	INCQ    AX
	VPXOR   X14, X14, X14
	VPINSRQ $1, AX, X14, X14
	LEAQ    (AX)(AX*1), BX
	VMOVQ   BX, X15
	ADDQ    AX, BX
	VPINSRQ $1, BX, X15, X15
	VINSERTI128 $1, X15, Y14, Y14

	SHRQ $2, CX
	JZ   cdone

cloop:
	VMOVUPD (SI), Y0
	VPXOR   Y2, Y2, Y2
	MOVQ    R8, R11
	MOVQ    R9, BX

cedge:
	VCMPPD $13, (R11), Y0, Y6
	VPSUBQ Y6, Y2, Y2
	ADDQ   $32, R11
	DECQ   BX
	JNZ    cedge

	// Non-finite values go to slot missing.
	VSUBPD    Y0, Y0, Y7
	VCMPPD    $4, Y10, Y7, Y7
	VBLENDVPD Y7, Y13, Y2, Y2

	// One sub-histogram per lane.
	VPADDQ       Y14, Y2, Y2
	VMOVQ        X2, AX
	VPEXTRQ      $1, X2, BX
	VEXTRACTI128 $1, Y2, X3
	VMOVQ        X3, DX
	VPEXTRQ      $1, X3, DI
	INCQ         (R10)(AX*8)
	INCQ         (R10)(BX*8)
	INCQ         (R10)(DX*8)
	INCQ         (R10)(DI*8)

	ADDQ $32, SI
	DECQ CX
	JNZ  cloop

cdone:
	VZEROUPPER
	RET
