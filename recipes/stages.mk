# Shared numbered stages of every recipe (ESPnet-style template; each recipe sets a few
# variables and includes this file). Each stage writes a stamp so `make` resumes where
# it stopped; `make N` runs stage N (and what it needs), `make clean` starts over.
#
# Variables a recipe sets:
#   CORPUS       yesno | an4 | fsdd
#   LM           ARPA file for the lang stage (empty: uniform word loop)
#   TEST_SETS    data sets decoded and scored
#   DECODE_OPTS  how test WER is chosen (e.g. --sweep 7:17, or --tune-on a dev decode dir)
#   TRAIN_SET    training data set (default train)

ROOT    := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))/..)
ASR     ?= $(ROOT)/.venv/bin/asr
DATA_ROOT ?= $(ROOT)/data
EXP_ROOT  ?= $(ROOT)/exp
RESULTS   ?= $(CURDIR)/RESULTS.md
DATA    := $(DATA_ROOT)/$(CORPUS)
EXP     := $(EXP_ROOT)/$(CORPUS)
CONF    := $(CURDIR)/conf.toml
MIRROR  ?= $(ASR_CORPUS_MIRROR)
TRAIN_SET ?= train
NJ      ?= 2
MIRROR_OPT := $(if $(MIRROR),--mirror $(MIRROR))

.PHONY: all data lang features mono graph decode results clean 1 2 3 4 5 6 7
all: results

1 data: $(DATA)/.done.data
$(DATA)/.done.data:
	$(ASR) prepare $(CORPUS) --out $(DATA) --work-dir $(DATA)/local $(MIRROR_OPT)
	touch $@

2 lang: $(DATA)/lang/.done
$(DATA)/lang/.done: $(DATA)/.done.data
	$(ASR) lang --config $(CONF) --dict $(DATA)/local $(if $(LM),--lm $(LM)) --out $(DATA)/lang
	touch $@

3 features: $(DATA)/.done.features
$(DATA)/.done.features: $(DATA)/.done.data
	$(ASR) features --config $(CONF) $(addprefix $(DATA)/,$(sort $(TRAIN_SET) $(TEST_SETS)))
	touch $@

4 mono: $(EXP)/mono/.done.train
$(EXP)/mono/.done.train: $(DATA)/lang/.done $(DATA)/.done.features
	$(ASR) train-mono --config $(CONF) --data $(DATA)/$(TRAIN_SET) --lang $(DATA)/lang --out $(EXP)/mono
	touch $@

5 graph: $(EXP)/mono/.done.graph
$(EXP)/mono/.done.graph: $(EXP)/mono/.done.train
	$(ASR) mkgraph --config $(CONF) $(EXP)/mono --lang $(DATA)/lang
	touch $@

6 decode: $(EXP)/mono/.done.decode
$(EXP)/mono/.done.decode: $(EXP)/mono/.done.graph
	$(foreach s,$(TEST_SETS),$(ASR) decode --config $(CONF) $(EXP)/mono --data $(DATA)/$(s) --dir $(EXP)/mono/decode_$(s) --nj $(NJ) $(DECODE_OPTS_$(s)) &&) true
	touch $@

7 results: $(EXP)/mono/.done.decode
	$(ASR) results $(EXP) --out $(RESULTS) --title "$(CORPUS)" --commands "make -C recipes/$(CORPUS)" --notes $(CURDIR)/notes.md

clean:
	rm -rf $(DATA) $(EXP)
