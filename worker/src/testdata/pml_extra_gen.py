# Extra PML 2.9.0 reference values (float64) for paths section 9 does not cover: mined tuples fed
# to losses, miner weights in classification/proxy losses, reducers, regularizers.
import json, math, warnings
warnings.filterwarnings("ignore")
import torch
torch.set_default_dtype(torch.float64)
from pytorch_metric_learning import losses, miners, distances, reducers, regularizers

def atc(a):
    return [2*math.cos(math.radians(a)), 0.5*math.sin(math.radians(a))]
A = torch.tensor([atc(a) for a in [0,20,40,60,80]]); Al = torch.tensor([0,0,1,1,2])
B = torch.tensor([[math.sin(0.7*i+1.3*j)+0.1*j for j in range(8)] for i in range(16)]); Bl = torch.tensor([i%4 for i in range(16)])
INPUTS = {"A5": (A, Al, 3), "B16": (B, Bl, 4)}
def fixed_W(r, c, a, b):
    return torch.tensor([[math.cos(a*i+b*j) for j in range(c)] for i in range(r)])

cases = []
def add(inp, name, spec, make, miner=None, miner_spec=None, weights=None):
    emb, lab, C = INPUTS[inp]; D = emb.shape[1]
    loss = make(C, D)
    if weights:
        for pname, (r, c, a, b) in weights.items():
            dims = {"C": C, "D": D, "2C": 2*C}
            getattr(loss, pname).data = fixed_W(dims[r], dims[c], a, b)
    t = miner(emb, lab) if miner is not None else None
    v = float(loss(emb, lab, t))
    cases.append({"input": inp, "pml": name, "spec": spec, "miner": miner_spec, "weights": weights, "expected": v})

W = {"W": ["D", "C", 0.5, 0.9]}; P = {"proxies": ["C", "D", 0.8, 0.3]}; FC = {"fc": ["D", "2C", 0.4, 0.7]}
for inp in ["A5", "B16"]:
    add(inp, "MarginLoss(margin=0.1,nu=0.1,beta=1,learn_beta=True,num_classes=C)",
        {"MarginLoss": {"margin": 0.1, "nu": 0.1, "beta": 1, "learn_beta": True, "num_classes": INPUTS[inp][2]}},
        lambda C, D: losses.MarginLoss(margin=0.1, nu=0.1, beta=1, learn_beta=True, num_classes=C))
    add(inp, "ContrastiveLoss(reducer=PerAnchorReducer())", {"ContrastiveLoss": {"reducer": {"PerAnchorReducer": None}}},
        lambda C, D: losses.ContrastiveLoss(reducer=reducers.PerAnchorReducer()))
    add(inp, "ContrastiveLoss(reducer=MultipleReducers({pos_loss: SumReducer()}))",
        {"ContrastiveLoss": {"reducer": {"MultipleReducers": {"reducers": {"pos_loss": {"SumReducer": None}}}}}},
        lambda C, D: losses.ContrastiveLoss(reducer=reducers.MultipleReducers({"pos_loss": reducers.SumReducer()})))
    add(inp, "TripletMarginLoss(margin=0.3,reducer=ThresholdReducer(low=0.1,high=0.4))",
        {"TripletMarginLoss": {"margin": 0.3, "reducer": {"ThresholdReducer": {"low": 0.1, "high": 0.4}}}},
        lambda C, D: losses.TripletMarginLoss(margin=0.3, reducer=reducers.ThresholdReducer(low=0.1, high=0.4)))
    add(inp, "ContrastiveLoss(neg_margin=2,distance=DotProductSimilarity(normalize_embeddings=False))",
        {"ContrastiveLoss": {"pos_margin": 1, "neg_margin": 2, "distance": {"DotProductSimilarity": {"normalize_embeddings": False}}}},
        lambda C, D: losses.ContrastiveLoss(pos_margin=1, neg_margin=2, distance=distances.DotProductSimilarity(normalize_embeddings=False)))
    add(inp, "TripletMarginLoss(embedding_regularizer=LpRegularizer(),embedding_reg_weight=0.1)",
        {"TripletMarginLoss": {"embedding_regularizer": {"LpRegularizer": None}, "embedding_reg_weight": 0.1}},
        lambda C, D: losses.TripletMarginLoss(embedding_regularizer=regularizers.LpRegularizer(), embedding_reg_weight=0.1))
    add(inp, "ArcFaceLoss(C,D,weight_regularizer=RegularFaceRegularizer(),weight_reg_weight=0.5)",
        {"ArcFaceLoss": {"weight_regularizer": {"RegularFaceRegularizer": None}, "weight_reg_weight": 0.5}},
        lambda C, D: losses.ArcFaceLoss(C, D, weight_regularizer=regularizers.RegularFaceRegularizer(), weight_reg_weight=0.5), weights=W)
    add(inp, "ProxyNCALoss(C,D,weight_regularizer=LpRegularizer(p=1,power=2),weight_reg_weight=0.3)",
        {"ProxyNCALoss": {"weight_regularizer": {"LpRegularizer": {"p": 1, "power": 2}}, "weight_reg_weight": 0.3}},
        lambda C, D: losses.ProxyNCALoss(C, D, weight_regularizer=regularizers.LpRegularizer(p=1, power=2), weight_reg_weight=0.3), weights=P)
    C = INPUTS[inp][2]
    add(inp, "SoftTripleLoss(C,D,centers_per_class=2,weight_regularizer=SparseCentersRegularizer(C,2),weight_reg_weight=0.2)",
        {"SoftTripleLoss": {"centers_per_class": 2, "weight_regularizer": {"SparseCentersRegularizer": {"num_classes": C, "centers_per_class": 2}}, "weight_reg_weight": 0.2}},
        lambda C, D: losses.SoftTripleLoss(C, D, centers_per_class=2, weight_regularizer=regularizers.SparseCentersRegularizer(C, 2), weight_reg_weight=0.2), weights=FC)
    # Mined tuples.
    for mname, mspec, m in [
        ("BatchHardMiner()", {"BatchHardMiner": None}, miners.BatchHardMiner()),
        ("MultiSimilarityMiner(epsilon=0.1)", {"MultiSimilarityMiner": {"epsilon": 0.1}}, miners.MultiSimilarityMiner(epsilon=0.1)),
        ("PairMarginMiner()", {"PairMarginMiner": None}, miners.PairMarginMiner()),
        ("TripletMarginMiner(type=semihard)", {"TripletMarginMiner": {"type_of_triplets": "semihard"}}, miners.TripletMarginMiner(type_of_triplets="semihard")),
    ]:
        for lname, lspec, make, w in [
            ("ContrastiveLoss()", {"ContrastiveLoss": None}, lambda C, D: losses.ContrastiveLoss(), None),
            ("TripletMarginLoss(margin=0.2)", {"TripletMarginLoss": {"margin": 0.2}}, lambda C, D: losses.TripletMarginLoss(margin=0.2), None),
            ("MarginLoss()", {"MarginLoss": None}, lambda C, D: losses.MarginLoss(), None),
            ("MultiSimilarityLoss()", {"MultiSimilarityLoss": None}, lambda C, D: losses.MultiSimilarityLoss(), None),
            ("NTXentLoss()", {"NTXentLoss": None}, lambda C, D: losses.NTXentLoss(), None),
            ("CircleLoss()", {"CircleLoss": None}, lambda C, D: losses.CircleLoss(), None),
            ("LiftedStructureLoss()", {"LiftedStructureLoss": None}, lambda C, D: losses.LiftedStructureLoss(), None),
            ("FastAPLoss()", {"FastAPLoss": None}, lambda C, D: losses.FastAPLoss(), None),
            ("NCALoss()", {"NCALoss": None}, lambda C, D: losses.NCALoss(), None),
            ("ArcFaceLoss(C,D)", {"ArcFaceLoss": None}, lambda C, D: losses.ArcFaceLoss(C, D), W),
            ("NormalizedSoftmaxLoss(C,D)", {"NormalizedSoftmaxLoss": None}, lambda C, D: losses.NormalizedSoftmaxLoss(C, D), W),
            ("ProxyNCALoss(C,D)", {"ProxyNCALoss": None}, lambda C, D: losses.ProxyNCALoss(C, D), P),
            ("ProxyAnchorLoss(C,D)", {"ProxyAnchorLoss": None}, lambda C, D: losses.ProxyAnchorLoss(C, D), P),
        ]:
            add(inp, f"{lname} with {mname}", lspec, make, miner=m, miner_spec=mspec, weights=w)
print(json.dumps(cases, indent=1))
