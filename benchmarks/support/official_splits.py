"""The official epoch-0 split of one warmup state under several data orders (issue 16).

  python3 official_splits.py <official pc2/ folder> <warmup output dir> <out dir> <seeds, e.g. 1,2,3> [<data path>]

<official pc2/ folder>: the official code, patched as ../../../shared/reference/README.md says, with a
`cpu_shim.py` beside it that maps its CUDA calls to the CPU (Tensor.cuda / Module.cuda as identity,
torch.cuda.is_available true, DataLoader pin_memory off, torch.load onto the CPU, one thread) and,
for the e2e set's space-separated captions, NLTK's word_tokenize as str.split. The official code is
not part of this repository.
<warmup output dir>: an official run with --num_epochs 0 (warmup_model_<N>.pth.tar and the
warmup_distri_bank_{A,B}.pkl PO banks). For each seed (random, numpy and torch seeded as run.py does)
the official `eval_train` splits the training set in the order of a fresh shuffled loader; written:
<out dir>/split_seed<s>.json with prob_/pred_/prob_ctt_/pred_ctt_ of both nets and the normalised losses.
benchmarks/split_agreement.ts compares these with ours.
"""
import glob, json, os, pickle, random, sys

sys.path.insert(0, sys.argv[1])
import cpu_shim  # noqa: F401,E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import co_train  # noqa: E402
from data import get_dataset, get_loader  # noqa: E402
from model import SGRAF  # noqa: E402
from vocab import deserialize_vocab  # noqa: E402

warm, out_dir, seeds = sys.argv[2], sys.argv[3], [int(s) for s in sys.argv[4].split(",")]
ck = torch.load(sorted(glob.glob(os.path.join(warm, "warmup_model_*.pth.tar")))[-1])
opt = ck["opt"]
data_path = sys.argv[5] if len(sys.argv) > 5 else opt.data_path
vocab = deserialize_vocab(os.path.join(opt.vocab_path, "%s_vocab.json" % opt.data_name))
caps, ims = get_dataset(data_path, opt.data_name, "train", vocab)
os.makedirs(out_dir, exist_ok=True)
names = ["prob_A", "prob_B", "pred_A", "pred_B", "prob_ctt_A", "prob_ctt_B", "pred_ctt_A", "pred_ctt_B"]
for seed in seeds:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    loader, n, clean = get_loader(opt.data_name, caps, ims, "warmup", opt.batch_size, 0, opt.noise_ratio, opt.noise_file)
    nets = SGRAF(opt), SGRAF(opt)
    nets[0].load_state_dict(ck["model_A"])
    nets[1].load_state_dict(ck["model_B"])
    banks = [pickle.load(open(os.path.join(warm, "warmup_distri_bank_%s.pkl" % k), "rb")) for k in "AB"]
    r = co_train.eval_train(opt, nets[0], nets[1], banks[0], banks[1], loader, n, [[], []], clean, 0, opt.noise_file, out_dir)
    z = {k: np.asarray(v).astype(float).tolist() for k, v in zip(names, r[:8])}
    z["loss_A"], z["loss_B"] = r[8][0][-1].tolist(), r[8][1][-1].tolist()
    with open(os.path.join(out_dir, "split_seed%d.json" % seed), "w") as f:
        json.dump(z, f)
    print("seed", seed, "clean A", int(np.sum(z["pred_A"])), "B", int(np.sum(z["pred_B"])), flush=True)
