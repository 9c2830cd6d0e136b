"""The catalogue of finding codes: the single source for ``gapdiag explain``, the docs and the report.

Each entry says what the code means, why it matters, how gapdiag measures it and how to fix it, like a
linter's rule page. Default thresholds are not repeated here: they are declared once on the probe that
emits the code and printed next to this text by ``gapdiag explain``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..errors import UnknownCodeError

__all__ = ["CodeInfo", "CATALOGUE", "lookup", "all_codes"]


@dataclass(frozen=True)
class CodeInfo:
    code: str
    title: str
    family: str
    meaning: str
    why: str
    measured: str
    fix: tuple[str, ...]
    # Among findings of equal weight, a lower rank is the more likely root cause (see _CAUSE_ORDER).
    cause_rank: int = 999


_ENTRIES = [
    # ---------------------------------------------------------------- leakage
    CodeInfo(
        "GD101",
        "Spurious shared attribute in the pairs",
        "leakage",
        "A property that has nothing to do with identity (colour cast, brightness, position, scanner...) "
        "tells similar training pairs from dissimilar ones, but does not do so on the validation pairs.",
        "A network rewarded for getting training pairs right will take the cheapest cue that works. If both "
        "images of every positive pair share a tint, 'same tint' is a perfect similarity signal in training "
        "and worthless at validation time, where it is absent: high training accuracy, poor validation.",
        "Every built-in and user attribute, and catalogue-free statistics that need no name for the artifact (per "
        "region and channel of images: mean, spread, min, max on a grid sized to the image; segments and frequency "
        "bands of 1-D signals; length, padding and distinct tokens of token sequences, and the pair's token "
        "overlap; each field of feature rows), is turned into pair features: level (mean of the two items), agreement "
        "(minus the absolute difference), deviation (distance of the level from the split's median item, which "
        "catches a shared random-sign change) and, for categories, equality. Per split, the ROC-AUC of each "
        "feature for the pair label has a stratified bootstrap CI; separability = |2 AUC - 1| read in the "
        "training direction. An attribute is flagged when its training separability is large, its drop from train "
        "to val is large, both CIs (Bonferroni-adjusted over all features) exclude 0, and the excess over a "
        "control passes the same test: the same training pairs with both sides re-drawn at random from their "
        "identities, on which a cue of the pairing vanishes and a cue of identity does not. A cross-validated "
        "logistic regression on all features tells whether the training pairs can be solved without looking at "
        "identity at all. Features of one artifact (moved by one intervention, correlated on the training pairs, or "
        "carried by the same pairs: as correlated as their common cause, the pair label, implies) make one finding "
        'that names the strongest and lists the others; image artifacts are localized in words ("the top-left 4x4 '
        'pixels") and on a heat map of the signal per region over the mean training image. The plainest '
        "shortcut is checked first: the share of similar pairs whose two sides are the same input (content hash), "
        "per split with Wilson CIs; a sampler that draws an anchor as its own partner fails GD101 on its own.",
        (
            "Remove the artifact from the training pipeline (apply augmentations independently to each image of a pair, or to none).",
            "Augment against the named attribute: random colour jitter, brightness, translation or blur applied independently per image.",
            "Balance the attribute across pair labels when sampling pairs (e.g. draw negatives from the same scanner).",
            "Re-check with gapdiag: the attribute's training AUC should fall near 0.5.",
        ),
    ),
    CodeInfo(
        "GD102",
        "The model relies on the spurious attribute",
        "leakage",
        "The model's similarity score follows the nuisance attribute: moving only that attribute changes the "
        "model's decisions.",
        "GD101 shows that a shortcut exists in the data; GD102 shows the network took it. A model that relies on "
        "the attribute will fail on any data where the attribute is distributed differently.",
        "Two measurements. (1) Within-label correlation: the Spearman correlation between the model's oriented "
        "score and each flagged attribute feature, among positive and among negative training pairs separately "
        "(Fisher-z CI, Bonferroni-adjusted), so identity cannot explain it. (2) A counterfactual on a bounded "
        "sample of validation pairs: the attribute of a positive training pair (tint, brightness, contrast, "
        "translation, blur, or a user intervention, fitted per source pair; for a catalogue-free artifact the level "
        "of its image region or signal segment, restricted to the pixels where positive and negative training items "
        "differ, its frequency band's power, the sequence length, or the field's value, each item from the same side "
        "of the source pair) is transplanted onto both items, which are re-embedded. The flip rate of decisions at the decision threshold is compared with a control "
        "transplant of the same kind from negative training pairs, which carries no label link; the excess flip "
        "rate (paired bootstrap CI), the false-accept rate on validation negatives and the score shift in "
        "validation-score standard deviations are reported. Attributes no intervention can move are judged on the "
        "correlation alone.",
        (
            "Retrain without the shortcut (see GD101) or with augmentation that randomises the attribute independently per image.",
            "Add the counterfactual as a test: scores should not move when only the attribute moves.",
            "If the attribute legitimately carries identity information, declare it and exclude it with --ignore GD102.",
        ),
    ),
    CodeInfo(
        "GD103",
        "Validation items are near-copies of training items",
        "leakage",
        "Some validation items are exact or near duplicates of training items.",
        "Duplicates across splits make the validation number optimistic and hide a real generalization gap; "
        "in metric learning they also turn unseen-identity evaluation into seen-identity evaluation.",
        "Exact duplicates by content hash. Near duplicates by the distance from each validation item to its "
        "nearest training item, in input space (images average-pooled, other inputs randomly projected) and in "
        "embedding space: a near copy is closer than half the 1st percentile of within-train nearest-neighbour "
        "distances (exact within-train duplicates excluded), a scale at which distinct items of a healthy split "
        "essentially never meet. The count is shown as a curve over thresholds against the chance background, and "
        "the validation metric (n-way top-1, else pair AUC) is recomputed on episodes or pairs that touch no "
        "duplicate, with a paired bootstrap CI of the change.",
        (
            "De-duplicate across splits before training (hash and near-duplicate search).",
            "Split by identity, source or capture session instead of by item.",
            "Report validation metrics on the de-duplicated set.",
        ),
    ),
    CodeInfo(
        "GD104",
        "Validation identities also occur in training",
        "leakage",
        "States whether validation is closed-set (its identities were seen in training) or open-set.",
        "Every other number reads differently: a closed-set validation measures recognition of known "
        "identities, an open-set one measures transfer of the embedding to new ones.",
        "By label: the share of validation identities and items whose label occurs in training, and whether each "
        "shared identity's validation centroid lies nearest to the training centroid of the same label. When "
        "labels cannot be compared (different label kinds), by embedding: "
        "a validation identity counts as seen when a training centroid lies within half its distance to the "
        "nearest other validation centroid. Always reported as information; real identity labels on both splits "
        "are required (inferred groups are not identities).",
        (
            "Decide which question validation should answer and build the split accordingly (disjoint identities for open-set).",
            "Read GD202 in that light: a gap on unseen identities calls for more identities, not more epochs.",
        ),
    ),
    CodeInfo(
        "GD105",
        "The model takes an augmentation for a match",
        "leakage",
        "Giving both items of a non-matching pair a usual augmentation (images: a colour cast, brightness, "
        "contrast, blur, noise, a shift, grey; feature rows: noise, corruption, dropout, scaling; token ids: "
        "deletion, truncation, word-order noise) makes the model score the pair as more alike than its true "
        "matches.",
        "A training loop that augments only the similar pairs (the seed's color_distortion inside the loop) "
        "teaches the network that 'both images augmented' means 'same identity'. The loop's own training "
        "accuracy then measures the augmentation, and the loader handed to an audit is clean, so no attribute "
        "of the data (GD101) can show the shortcut: only the model can.",
        "On a seeded sample of validation pairs of each label, each augmentation that applies to the inputs is "
        "given to both items of every non-matching pair, each item its own random draw at a moderate "
        "strength (in the data's units: each image's value range, each field's spread), and the pairs are "
        "re-embedded (half of them first; an augmentation whose crossing CI is then below 0.5 stops there). The crossing rate "
        "is the probability that an augmented non-match scores above a true match (1 - ROC-AUC of clean "
        "matches against augmented non-matches, chance 0.5); it is compared with the same rate without the "
        "augmentation, with paired bootstrap CIs simultaneous over the augmentations (Bonferroni). A merely "
        "non-invariant model moves its scores but keeps augmented non-matches below its matches.",
        (
            "Apply augmentation to both items of every pair, similar and dissimilar alike, each image its own draw "
            "(or to none): never to one label only.",
            "Measure training accuracy on the pairs as loaded, not on the augmented batch of the loop.",
            "Add the check as a test: augmenting both images of a non-match must not make it a match.",
        ),
    ),
    # ---------------------------------------------------------------- embedding space
    CodeInfo(
        "GD201",
        "The network memorized its training pairs",
        "embedding",
        "The model does much better on the exact training pairs it was trained on than on fresh pairs drawn from "
        "the same training items.",
        "A net that memorized pairs has not learned an embedding: it will not generalize to new pairs even of known "
        "items, let alone to new identities.",
        "Each given training pair keeps one side, chosen at random; the other side is replaced (several times) by "
        "another item of the same identity, never recreating a given pair: of any role (the gap chain's "
        "pair-specific step), and only among items that played the same role (member of a similar or of a "
        "dissimilar pair). Identities come from labels or, without labels, from the connected components of "
        "positive pairs (inferred groups, said so). Accuracy at the decision threshold and ROC-AUC on given vs "
        "re-paired pairs, with paired bootstrap CIs; both re-pairings losing means memorized pairs, only the "
        "role-free one losing means memorized roles. When a shared attribute (GD101) owns the same drop in the "
        "gap chain, GD201 is lowered to info.",
        (
            "Sample pairs anew every epoch instead of training on a fixed list.",
            "Use weight decay, early stopping on a validation metric, and augmentation.",
            "Prefer triplet or batch-all/batch-hard losses over a fixed pair list.",
        ),
    ),
    CodeInfo(
        "GD202",
        "Class-level generalization gap",
        "embedding",
        "Retrieval and clustering quality on validation identities is far below the training identities.",
        "This is the real generalization gap of a metric-learning model: the embedding separates the classes it "
        "was trained on but not the validation ones.",
        "Precision@1, R-precision and MAP@R (self-match excluded, as in pytorch-metric-learning), NMI/AMI of "
        "k-means and a sampled silhouette per split, with bootstrap CIs over queries. The decision reads "
        "R-precision above its chance level (the mean share of same-class items among the others), so splits with "
        "different numbers of identities compare fairly; the ratio val/train of the above-chance values and the "
        "CI of their difference are compared with the thresholds. The message says whether validation identities "
        "are seen, unseen or mixed (share of validation labels found in training). Real identity labels only: "
        "groups inferred from positive pairs are not identities, so without labels the probe is skipped and the "
        "report says how to pass them.",
        (
            "More identities (not more items per identity) in training.",
            "Losses that shape the whole space (triplet with hard-negative mining, proxy losses, n-way episodes).",
            "Regularise: weight decay, augmentation, smaller embedding head; stop early on validation R-precision.",
        ),
    ),
    CodeInfo(
        "GD203",
        "Dimensional collapse of the embedding",
        "embedding",
        "The embeddings occupy far fewer dimensions than they have.",
        "A collapsed embedding cannot separate many identities; it is typical of too-strong a margin, a dead "
        "projection head or a shortcut that needs only a few directions.",
        "Effective rank = exp(H(p)), where p are the singular values of the centred embedding matrix divided by "
        "their sum and H is Shannon entropy (Roy & Vetterli, 2007); it ranges from 1 to min(N, d). It is compared "
        "with the number of directions the identities need, min(d, C - 1, N - 1) for C identities with two or "
        "more items (a simplex of C points spans C - 1 dimensions), with a block-bootstrap CI. Alignment (mean "
        "squared distance between L2-normalised embeddings of positive pairs) and uniformity (log of the mean "
        "Gaussian potential over a sample of normalised pairs, Wang & Isola 2020) are reported, not judged. A "
        "warning when validation is collapsed and training is not; information when training is collapsed too, "
        "since a collapse both splits share limits both alike instead of explaining the gap between them.",
        (
            "Check the projection head and normalisation; lower the margin or temperature.",
            "Add a decorrelation or uniformity term, or use a loss with more negatives per anchor.",
        ),
    ),
    CodeInfo(
        "GD204",
        "Hubness in the embedding space",
        "embedding",
        "A few items are the nearest neighbour of very many others.",
        "Hubs dominate n-way identification: a hub is picked as the match whatever the anchor, which lowers top-1 "
        "accuracy without any visible loss in pairwise verification.",
        "The k-occurrence of each item (how often it appears in other items' k nearest neighbours, k = 10, "
        "chunked exact kNN) and the skewness of its distribution (Radovanovic et al., 2010) with a bootstrap CI; "
        "also the share of anti-hubs (never a neighbour), the top hub's count and the share of neighbour slots "
        "taken by the top 1% of items. The null is a Gaussian cloud with the embedding's own mean and covariance "
        "spectrum (same n, k and metric): high-dimensional data is hubby by dimension alone. Warn when the skewness "
        "is marked (> 3) and exceeds the null's by the excess threshold with a CI above 0; dimensional hubness "
        "that the null shows too is info.",
        (
            "L2-normalise and centre embeddings; consider cosine distance.",
            "Use hubness reduction (CSLS, mutual proximity) in the identification step.",
        ),
    ),
    CodeInfo(
        "GD205",
        "Train and validation embeddings are separable",
        "embedding",
        "A classifier can tell training embeddings from validation embeddings.",
        "The model maps validation data to a different region than training data: a distribution shift between "
        "the splits (different capture, preprocessing, identities) that the model sees.",
        "A standardised logistic regression predicts the split from the embeddings, 5-fold stratified "
        "cross-validation on a bounded, balanced sample (when labels are shared, the same number of items per "
        "shared identity from each split, so identity cannot give the split away); the out-of-fold ROC-AUC (0.5 = "
        "no shift) with a bootstrap CI. Never a fail on its own: the probes that name a cause (GD305, "
        "GD101/GD102) carry it; with all validation identities unseen it is information.",
        (
            "Look at GD305 (preprocessing) and GD103/GD104 (what the splits contain).",
            "Make the splits come from the same capture distribution, or adapt the model to the validation domain.",
        ),
    ),
    CodeInfo(
        "GD206",
        "Validation scores barely vary",
        "embedding",
        "The model gives (almost) every validation pair the same score: the spread of validation scores is tiny "
        "next to the spread of training scores.",
        "When validation scores do not vary, every decision threshold puts all validation pairs on one side and "
        "every n-way pick is decided by ties or float noise: the validation accuracy measures chance, not the "
        "model. It is what a network that learned a shortcut does on inputs without the shortcut (a stamp on "
        "positive training pairs, absent on clean validation items: all of them get one embedding).",
        "The standard deviation of the oriented scores of validation pairs and of training pairs (a seeded sample "
        "of each), their ratio SD_val / SD_train (1 = the same spread, 0 = one score for all) with a percentile "
        "bootstrap CI (pairs resampled independently in each split), the share of validation pairs that share "
        "the median score up to float precision, and for episodes the share with a tie for the best candidate. "
        "A warning when the whole CI of the ratio lies below 0.1 (the whole validation distribution fits inside "
        "less than half a training SD, inside the gap the model keeps between training positives and "
        "negatives), a fail below 0.01 or when validation scores are constant.",
        (
            "Look for the shortcut that the validation items lack (GD101/GD102) and remove it from training.",
            "Check that validation inputs reach the model like training inputs (GD305 preprocessing, GD306 mode): "
            "a constant or saturated input gives one embedding.",
            "Inspect the embeddings of a few validation items: identical rows mean a collapsed or dead encoder.",
        ),
    ),
    # ---------------------------------------------------------------- protocol
    CodeInfo(
        "GD301",
        "Train and validation are measured with different protocols",
        "protocol",
        "The training number comes from pairwise verification and the validation number from n-way "
        "identification (or the reverse), so the gap mixes a change of protocol with real generalization.",
        "Pairwise accuracy at a threshold and n-way top-1 accuracy live on different scales: with 10 candidates, "
        "chance is 0.1 and a model that verifies 90% of pairs correctly can still pick the wrong candidate often, "
        "because one confusable distractor out of nine suffices. Comparing them as one 'accuracy' overstates the gap.",
        "Both splits are evaluated under both protocols: pairwise verification (accuracy at the decision "
        "threshold, balanced accuracy, ROC-AUC) and n-way identification (top-1, chance 1/n, ties share credit). "
        "Train episodes come from labels or from the graph of positive pairs; validation pairs from validation "
        "episodes. The gap chain (docs/gap-chain.md) measures validation under the training protocol and as the "
        "user measures it: their difference is the protocol step, with a bootstrap CI. Raised, as info, whenever "
        "the protocols differ; when the step is material (large, CI above 0, a quarter of the chain) it names "
        "the protocol as part of the gap and owns that step. Info, because the protocol is a property of the "
        "evaluation, not a fault of the model.",
        (
            "Validate under the protocol you train for, or train for the protocol you deploy (episodic n-way training, triplet loss).",
            "Report both numbers side by side with their chance levels.",
            "Judge generalization by the same-protocol gap.",
        ),
    ),
    CodeInfo(
        "GD302",
        "The score is read in the wrong direction",
        "protocol",
        "On training pairs the score, read the way the evaluation reads it (kind), ranks dissimilar pairs above "
        "similar ones.",
        "Taking min() over a similarity (or max() over a distance) picks the least similar candidate: validation "
        "accuracy falls below chance although the model is fine.",
        "ROC-AUC of the oriented score on the training pairs, with a bootstrap CI; far below 0.5 means the direction "
        "is inverted.",
        (
            "If distance() returns a similarity (e.g. cosine), pick the match with max(), or declare kind='similarity'.",
            "Or return a distance (1 - cosine) from distance().",
            "If your pair labels mark dissimilar pairs with 1 (the contrastive-loss convention), the score is fine and "
            "the labels are read backwards: set similar_label = 0. With identity labels or episodes gapdiag tells "
            "the two apart itself and stops with an error that says so.",
        ),
    ),
    CodeInfo(
        "GD303",
        "The training threshold does not transfer",
        "protocol",
        "The decision threshold tuned on training pairs costs a lot of accuracy on validation pairs compared with "
        "the best validation threshold.",
        "Score scales drift between splits (calibration), so a fixed threshold turns an embedding that still ranks "
        "well (good AUC) into poor accuracy.",
        "Validation balanced accuracy at the decision threshold (yours, or tuned on training pairs) against the "
        "best validation threshold, chosen on one half of the validation pairs and scored on the other "
        "(cross-fitted, so no in-sample optimism), with a bootstrap CI of the loss. Balanced accuracy keeps the "
        "positive ratio (GD304) out of it. A warning when validation is pairwise; information when it is n-way, "
        "which needs no threshold.",
        (
            "Calibrate the threshold on a held-out set drawn like the deployment data.",
            "L2-normalise embeddings so score scales are stable; use a score normalisation.",
        ),
    ),
    CodeInfo(
        "GD304",
        "Pair composition differs between splits",
        "protocol",
        "The splits have very different shares of positive pairs or negatives of very different difficulty.",
        "Plain accuracy depends on the positive ratio: 90% negatives make an always-'different' model 90% accurate. "
        "Numbers from splits of different composition are not comparable; balanced accuracy is.",
        "Positive ratio per split (Wilson CI) and negative difficulty (share of negatives scoring above the "
        "median positive), with accuracy and balanced accuracy side by side. The ratio difference is judged only "
        "when both splits' pairs were given by the user, since derived pairs have the ratio their protocol "
        "implies. Hardness of the dissimilar pairs is judged against random pairs of the same split's items, "
        "scored by the same model, so model quality cancels: the probability that a given dissimilar pair scores "
        "above a random pair (DeLong CI; 0.5 = drawn at random), per split. Raised when validation's is high "
        "(its CI above 0.5) and clearly above training's (normal CI of the difference above 0): validation's "
        "negatives or distractors were mined. Reported with the validation accuracy that random dissimilar pairs "
        "would give, and the user's n-way validation re-run with random distractors (paired bootstrap). Random "
        "pairs are of different identity labels where labels exist; without labels a few may share an identity, "
        "which only makes every comparison conservative. Also raised when "
        "the user's training pairs are so lopsided that the training accuracy's CI reaches the majority share: "
        "the training number then measures the mix, not the model.",
        (
            "Compare balanced accuracy or ROC-AUC, not plain accuracy.",
            "Build validation pairs with the same positive ratio as training.",
            "Build training and validation negatives the same way: mine training negatives as hard as validation's, "
            "or draw validation's at random.",
        ),
    ),
    CodeInfo(
        "GD307",
        "The episodes' correct index names another candidate",
        "protocol",
        "In the user's n-way episodes the model's picks pile up at a fixed offset from the candidate the correct "
        "index names: the index looks shifted (off by one, or taken before the true match was inserted).",
        "A shifted index makes validation accuracy fall below chance however good the model is, and every pair "
        "derived from the episodes carries the wrong label: the whole validation number measures the loader.",
        "For each split's given episodes, the offset of the model's pick (argmax of the score in gapdiag's reading) "
        "from the named candidate, modulo n, and the share of episodes at each offset (Wilson CIs). Raised when an "
        "offset other than 0 holds at least twice the chance share, with its CI above chance and above the CI of "
        "offset 0. No label is needed: a right index piles the picks of a model above chance at offset 0. An index "
        "that always names one fixed wrong slot spreads the picks evenly and cannot be told from a model at chance.",
        (
            "Compute correct_index after the true match is placed among the candidates, from the same list the "
            "candidates come from, counting from 0.",
            "Check a few episodes by eye: the candidate at correct_index must be the anchor's identity.",
        ),
    ),
    CodeInfo(
        "GD305",
        "Preprocessing differs between splits",
        "protocol",
        "The inputs of the splits differ in shape, dtype, value range, per-channel statistics or orientation in a "
        "way that points to a different preprocessing (for example a validation loader without normalisation, or "
        "one that swaps height and width).",
        "The model sees validation inputs on a scale it never saw in training; embeddings and distances are then "
        "meaningless.",
        "Per split, on a bounded sample of items: shapes, dtype, min/max, per-channel mean and standard "
        "deviation. The validation channel means' shift in training standard deviations and the ratio of standard "
        "deviations, with bootstrap CIs, plus coverage: the share of validation items whose own mean, std, min or "
        "max falls outside the range of the training items. A fail needs a large scale difference and a majority "
        "of validation items outside the training range (augmentation that only touches training pairs moves the "
        "statistics but not the coverage); different shapes are a fail, a different dtype kind a warning. For "
        "images also the orientation: the mean validation item against the mean training item (16 x 16 averages), "
        "before and after undoing a flip, a turn, a transposition, a zoom (a crop of another size) or a channel "
        "reversal; a fail when one undo "
        "removes most of a real difference. For token ids (categories, whose scale means nothing) the sequence "
        "lengths instead: a fail when a real share of one split's sequences is longer than the other split's "
        "longest (a tokenizer's max_length or pad id that differs between loaders). For feature rows, the column "
        "order: each validation column matched to the training column it resembles (mean, spread, correlations); "
        "a fail when that order removes most of a real difference between the tables.",
        (
            "Apply exactly the same transforms (Normalize, resize, channel order, dtype scaling) to validation.",
            "Share one preprocessing function between training and evaluation code.",
        ),
    ),
    CodeInfo(
        "GD306",
        "Embeddings depend on train/eval mode",
        "protocol",
        "Embeddings of the same inputs differ a lot between model.train() and model.eval().",
        "If the validation code forgets model.eval(), Dropout and BatchNorm batch statistics change the embeddings; "
        "if training accuracy was measured in train mode, it is not comparable with an eval-mode validation.",
        "On a deep copy of the model (BatchNorm statistics of the user's model are never touched, the global "
        "random state is untouched) a bounded sample of validation items is embedded in both modes with the same "
        "batches. The relative change of embeddings (bootstrap CI) and the agreement of n-way (or "
        "nearest-neighbour) decisions between modes (Wilson CI) are reported; a model without mode-dependent "
        "layers gives exactly zero. Warn when the model was handed over in train mode (the user's evaluation then "
        "likely ran in it); info when it came in eval mode.",
        (
            "Call model.eval() before validation and model.train() before training steps.",
            "Measure training accuracy in eval mode too.",
        ),
    ),
    CodeInfo(
        "GD900",
        "A probe failed",
        "meta",
        "A probe raised an error; its part of the audit is missing.",
        "A silent crash would turn a broken check into a green build; gapdiag reports it instead.",
        "The exception of the probe, caught by the probe runner.",
        ("Read the message; if the input is valid, report the bug with the JSON report attached.",),
    ),
]

# When two findings carry the same weight, the one earlier here is the more likely root cause: bugs at the
# evaluation boundary invalidate every other number, then shortcuts and contamination, then memorization,
# protocol mismatch and the genuine gap, then descriptive findings.
_CAUSE_ORDER = (
    "GD302", "GD307", "GD305", "GD306", "GD101", "GD102", "GD105", "GD103", "GD201", "GD301",
    "GD202", "GD206", "GD303", "GD304", "GD203", "GD204", "GD205", "GD104", "GD900",
)  # fmt: skip

CATALOGUE: dict[str, CodeInfo] = {
    e.code: replace(e, cause_rank=_CAUSE_ORDER.index(e.code)) if e.code in _CAUSE_ORDER else e
    for e in _ENTRIES
}


def lookup(code: str) -> CodeInfo:
    """The catalogue entry of ``code``; raises UnknownCodeError naming the known codes."""
    key = str(code).strip().upper()
    if key not in CATALOGUE:
        raise UnknownCodeError(f"Unknown finding code {code!r}. Known codes: {', '.join(CATALOGUE)}.")
    return CATALOGUE[key]


def all_codes() -> list[str]:
    return list(CATALOGUE)
