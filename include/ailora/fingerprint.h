/* fingerprint.h - provenance fingerprints of model tensors and model directories.
 *
 * Hash: XXH3 128-bit (xxHash, libxxhash), printed as 32 lowercase hex digits.
 * Not cryptographic: it guards against mix-ups (the cache of another model, a
 * re-saved or fine-tuned checkpoint), not against forgery.
 *
 *   tensor fingerprint  XXH3-128 over, in this order: the tensor's name, a zero
 *                       byte, its dtype name ("BF16"), a zero byte, ndim and every
 *                       dimension as int64 little-endian, then its stored bytes
 *                       exactly as they are in the safetensors file.
 *   model fingerprint   XXH3-128 over: the bytes of config.json, then for each
 *                       shard in the model's order its file name, a zero byte and
 *                       its whole header (8-byte length + JSON), then the 16-byte
 *                       tensor fingerprint of every tensor of every shard (shard
 *                       order, names sorted). Two directories with equal model
 *                       fingerprints hold the same config and the same bytes in
 *                       every tensor, stored the same way.
 */
#ifndef AILORA_FINGERPRINT_H
#define AILORA_FINGERPRINT_H

#include <mpi.h>

#include "ailora/hfmodel.h"
#include "ailora/safetensors.h"

#define FINGERPRINT_ALGORITHM "xxh3-128"
#define FINGERPRINT_HEX 33  /* 32 hex digits + NUL */

/* Fingerprint of one tensor: reads all its bytes (serial). */
void fingerprint_tensor(const SafeTensor *t, char hex[FINGERPRINT_HEX]);
/* Fingerprints of the listed tensors, tensor i hashed on rank i % size and the
 * results shared: hex[i] is the same on every rank. Collective over comm. */
int fingerprint_tensors(MPI_Comm comm, const SafeTensor *const *tensors, int count,
                        char (*hex)[FINGERPRINT_HEX]);
/* Model fingerprint of a directory (see above); the tensors are dealt over the
 * ranks of comm. Collective. */
int fingerprint_model(MPI_Comm comm, const HFModel *model, char hex[FINGERPRINT_HEX]);

#endif
