// Package edbatch verifies Ed25519 signatures (RFC 8032, pure Ed25519)
// many at a time, with the random linear combination method: for
// signatures (R_i, s_i) by keys A_i over messages M_i it checks
//
//	[8]([Σ z_i s_i]B − Σ [z_i]R_i − Σ [z_i k_i]A_i) = 0
//
// with k_i = SHA-512(R_i ‖ A_i ‖ M_i) reduced mod ℓ and z_i fresh random
// 128-bit scalars, one multi-scalar multiplication for the whole batch
// (signatures under the same key share one A term). A batch that fails
// says only that some signature is bad; [Batch.VerifyEach] then bisects
// so that one bad signature cannot make good ones fail.
//
// # Acceptance rule
//
// Every function here accepts exactly the signatures that satisfy the
// cofactored equation [8][s]B = [8]R + [8][k]A of RFC 8032 §5.1.7, with
// the encoding rules of Go's crypto/ed25519:
//
//   - s must be canonical (s < ℓ), or the signature is rejected;
//   - A and R must decode to curve points; R must also be the canonical
//     encoding of its point (crypto/ed25519 compares R byte for byte with
//     a canonical encoding, so it never accepts another); A may be any
//     encoding that decodes, as crypto/ed25519 allows;
//   - k is hashed over the bytes as given.
//
// The single verification [Verify] uses the same cofactored equation, so
// whether a signature is accepted never depends on whether it was checked
// alone or in a batch, nor on the batch's random coefficients. This is the
// one divergence from crypto/ed25519, whose check is the cofactorless
// [s]B = R + [k]A: a signature whose R or key A carries a small-order
// (torsion) component, with [s]B − R − [k]A a nonzero point of order
// dividing 8, is accepted here and rejected by crypto/ed25519. Every
// signature crypto/ed25519 accepts is accepted here. Only the key's
// holder can make such a signature (the cofactored equation is as
// unforgeable as the cofactorless one), honest signers never do (R = [r]B
// and A = [a]B have no torsion component), and a cofactorless batch check
// cannot be made consistent with single verification at all: its outcome
// for such a signature would depend on the random z_i. See "It's 255:19AM.
// Do you know what your validation criteria are?" (H. de Valence, 2020)
// and ZIP 215, which settled on the cofactored equation for the same
// reason; unlike ZIP 215 this package keeps crypto/ed25519's canonical-R
// rule.
package edbatch
