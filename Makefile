# asr: the two commands a new user needs.
#   make run   set up, run the yesno recipe end to end, decode a wav with the CLI
#   make test  set up, run the test suite
PYTHON ?= python3
VENV   := .venv
ASR    := $(VENV)/bin/asr
export ASR_CORPUS_MIRROR ?= $(abspath ../shared/corpora)

.PHONY: setup run test an4 fsdd clean
setup: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $@

run: setup
	$(MAKE) -C recipes/yesno
	@echo "== asr decode exp/yesno/mono data/yesno/local/waves_yesno/1_0_1_1_1_0_1_0.wav"
	@$(ASR) decode exp/yesno/mono data/yesno/local/waves_yesno/1_0_1_1_1_0_1_0.wav
	@echo "== test-set WER per system (exp/yesno/<system>/decode_test/wer.txt)"
	@for s in mono tri1 dnn ctc; do printf '%-5s ' $$s; head -1 exp/yesno/$$s/decode_test/wer.txt; done
	@printf 'ctc without lexicon or LM (greedy): '; head -1 exp/yesno/ctc/decode_test_greedy/wer.txt

test: setup
	$(VENV)/bin/pytest -q

an4 fsdd: setup
	$(MAKE) -C recipes/$@

clean:
	rm -rf data exp
