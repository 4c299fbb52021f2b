"""Official PC2 checkpoint (+ PO banks) -> safetensors with the official names.

  python3 official_to_safetensors.py <warmup_model_N.pth.tar> <po_dir> <out.safetensors> [n_captions]

Writes `model_A.<module>.<name>` / `model_B.…` (modules img_enc, txt_enc, sim_enc, img_pro_head, as
the official `SGRAF.state_dict()` list holds them) and, when `<po_dir>` holds
`warmup_distri_bank_{A,B}.pkl`, `bank_A.probs` [N, proj_dim] float32 and `bank_A.has` [N] uint8.
benchmarks/support/official-checkpoint.ts turns that file into a checkpoint of this trainer.
Needs torch and numpy only (the safetensors layout is written by hand).
"""
import json, os, pickle, struct, sys

import numpy as np
import torch

MODULES = ["img_enc", "txt_enc", "sim_enc", "img_pro_head"]


def write_safetensors(path, tensors, metadata=None):
    header, blobs, offset = {}, [], 0
    for name, a in tensors.items():
        a = np.ascontiguousarray(a)
        dtype = {np.dtype("float32"): "F32", np.dtype("int64"): "I64", np.dtype("uint8"): "U8"}[a.dtype]
        b = a.tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def main():
    ck_path, po_dir, out = sys.argv[1:4]
    ck = torch.load(ck_path, map_location="cpu")
    tensors = {}
    for net in ["A", "B"]:
        for module, sd in zip(MODULES, ck["model_" + net]):
            for name, t in sd.items():
                a = t.detach().cpu().numpy()
                if name.endswith("num_batches_tracked"):
                    a = a.reshape(1).astype(np.int64)
                tensors["model_{}.{}.{}".format(net, module, name)] = a.astype(np.int64) if a.dtype == np.int64 else a.astype(np.float32)
    n = int(sys.argv[4]) if len(sys.argv) > 4 else None
    for net in ["A", "B"]:
        p = os.path.join(po_dir, "warmup_distri_bank_{}.pkl".format(net))
        if not os.path.isfile(p):
            continue
        with open(p, "rb") as f:
            bank = pickle.load(f)
        ids = sorted(int(k) for k in bank)
        size = n if n is not None else ids[-1] + 1
        k = len(next(iter(bank.values())))
        probs = np.zeros((size, k), dtype=np.float32)
        has = np.zeros(size, dtype=np.uint8)
        for i, v in bank.items():
            probs[int(i)] = v
            has[int(i)] = 1
        tensors["bank_{}.probs".format(net)] = probs
        tensors["bank_{}.has".format(net)] = has
    opt = ck.get("opt")
    meta = {"source": os.path.abspath(ck_path), "epoch": str(ck.get("epoch")), "seed": str(getattr(opt, "seed", ""))}
    write_safetensors(out, tensors, meta)
    print("wrote {} ({} tensors)".format(out, len(tensors)))


if __name__ == "__main__":
    main()
