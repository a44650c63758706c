# Shared numbered stages of every recipe (ESPnet-style template; each recipe sets a few
# variables and includes this file). Each stage writes a stamp so `make` resumes where
# it stopped; `make N` runs stage N (and what it needs), `make clean` starts over.
# Every rule names the stamps of all the stages whose files it reads, so any target runs
# from an empty data/ and exp/ (tests/test_recipe_yesno.py checks the longest path).
#
# Variables a recipe sets:
#   CORPUS       yesno | an4 | fsdd
#   LM           ARPA file for the lang stage (empty: uniform word loop)
#   TEST_SETS    data sets decoded and scored
#   DECODE_OPTS_<set>        how test WER is chosen (e.g. --sweep 7:17, or --tune-on a dev decode dir)
#   DECODE_OPTS_<set>_<sys>  the same for one system (CTC log-posteriors want LMWT ~0.5-3)
#   TUNE_SET     a set of TEST_SETS (e.g. dev) whose grid chooses the setting of the others:
#                they are decoded with it in the same process (asr decode --then), as
#                --tune-on its decode dir would (empty: each set with its own DECODE_OPTS)
#   TRAIN_SET    training data set (default train)
#   SYSTEMS      acoustic models trained, decoded and compared (default mono tri1 dnn ctc)
#   PREPARE_CMD  how stage 1 makes $(DATA)/{train,test,...} and the dict $(DATA)/local
#                (default: `asr prepare $(CORPUS)`; recipes/TEMPLATE copies your own)
#   LANG_DEPS    files the lang stage needs besides the data (e.g. an LM built from text)
#   DICT_DIR     the dict dir the lang stage reads (default $(DATA)/local)
#   MONO_SHORTEST  train mono on the N shortest utterances (Kaldi's --shortest subset), then
#                  align all of TRAIN_SET with it for tri1 (empty: mono on all of it)
#   DNN_GMM      the GMM system whose tied states and alignments the DNN learns (default tri1)
#   DNN_SPEED_PERTURB  speed factors of the DNN's training copies (e.g. 0.9,1.0,1.1; empty: none)
#                (system dnn_aug: the [dnn] network on those plus [augment] multi-condition copies)
#   DNN_TUNE_HELDOUT   yes: tune the DNN's LMWT on its held-out speakers (a corpus without dev set)
#   DECODE_OPTS_heldout  the grid decoded on them (default Kaldi's --sweep 7:17)
#   NNET_SEEDS   extra seeds of the neural systems (e.g. "1 2": <sys>_seed1, <sys>_seed2)
#   RESULTS_LABELS     --label 'SYSTEM=TEXT' options for `asr results` (rows resting on a
#                      choice not made on dev say so, e.g. "test-tuned: ...")

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
SYSTEMS ?= mono tri1 dnn ctc
NNET_SEEDS ?=
SEED_COPIES = $(foreach k,$(NNET_SEEDS),$(addsuffix _seed$(k),$(filter dnn dnn_aug dnn_fmllr ctc,$(SYSTEMS))))
ALL_SYSTEMS = $(SYSTEMS) $(SEED_COPIES)
# The system a seed copy is of (dnn_fmllr_seed2 -> dnn_fmllr): its per-system settings apply.
base_sys = $(firstword $(subst _seed, ,$(1)))
DATA_SUFFIX_dnn := _fbank
DATA_SUFFIX_ctc := _fbank
NNET_DEVICE ?= $(DNN_DEVICE)
MIRROR_OPT := $(if $(MIRROR),--mirror $(MIRROR))

# Stage markers are never intermediate: a rerun must not redo a seed copy's graph.
.SECONDARY:
.PHONY: all data lang features mono tri1 tri2 tri3 nnet dnn ctc graph decode results clean ablation 1 2 3 4 5 6 7 8 9
all: results

PREPARE_CMD ?= $(ASR) prepare $(CORPUS) --out $(DATA) --work-dir $(DATA)/local $(MIRROR_OPT)
1 data: $(DATA)/.done.data
$(DATA)/.done.data:
	$(PREPARE_CMD)
	touch $@

DICT_DIR ?= $(DATA)/local
2 lang: $(DATA)/lang/.done
$(DATA)/lang/.done: $(DATA)/.done.data $(LANG_DEPS)
	$(ASR) lang --config $(CONF) --dict $(DICT_DIR) $(if $(LM),--lm $(LM)) --out $(DATA)/lang
	touch $@

3 features: $(DATA)/.done.features $(if $(filter dnn ctc,$(SYSTEMS)),$(DATA)/.done.fbank)
$(DATA)/.done.features: $(DATA)/.done.data
	$(ASR) features --config $(CONF) $(addprefix $(DATA)/,$(sort $(TRAIN_SET) $(TEST_SETS)))
	touch $@

# The DNN's input: 40 log mel filterbanks ([fbank] section) in copies <set>_fbank of the data dirs.
$(DATA)/.done.fbank: $(DATA)/.done.data
	$(ASR) features --config $(CONF) --section fbank --suffix _fbank $(addprefix $(DATA)/,$(sort $(TRAIN_SET) $(TEST_SETS)))
	touch $@

ifneq ($(MONO_SHORTEST),)
MONO_SET := $(TRAIN_SET)_$(MONO_SHORTEST)short
MONO_ALI := $(EXP)/mono_ali
$(DATA)/$(MONO_SET)/.done: $(DATA)/.done.features
	$(ASR) subset-data $(DATA)/$(TRAIN_SET) $(DATA)/$(MONO_SET) --shortest $(MONO_SHORTEST)
	touch $@
$(MONO_ALI)/.done: $(EXP)/mono/.done.train
	$(ASR) align $(EXP)/mono --data $(DATA)/$(TRAIN_SET) --out $(MONO_ALI) --nj $(NJ)
	touch $@
MONO_DEPS := $(DATA)/$(MONO_SET)/.done
TRI1_DEPS := $(MONO_ALI)/.done
else
MONO_SET := $(TRAIN_SET)
MONO_ALI := $(EXP)/mono/ali
endif

4 mono: $(EXP)/mono/.done.train
$(EXP)/mono/.done.train: $(DATA)/lang/.done $(DATA)/.done.features $(MONO_DEPS)
	$(ASR) train-mono --config $(CONF) --data $(DATA)/$(MONO_SET) --lang $(DATA)/lang --out $(EXP)/mono
	touch $@

# Triphones with tied states, from the monophone alignment ([tri1] section of conf.toml);
# stage 5 also trains the other GMM systems of SYSTEMS (tri2, tri3).
5: $(addsuffix /.done.train,$(addprefix $(EXP)/,tri1 $(filter tri2 tri3,$(SYSTEMS))))
tri1: $(EXP)/tri1/.done.train
$(EXP)/tri1/.done.train: $(EXP)/mono/.done.train $(DATA)/lang/.done $(DATA)/.done.features $(TRI1_DEPS)
	$(ASR) train-tri --config $(CONF) --section tri1 --data $(DATA)/$(TRAIN_SET) --lang $(DATA)/lang \
	  --ali $(MONO_ALI) --out $(EXP)/tri1
	touch $@

# LDA+MLLT triphones on spliced MFCCs, from the tri1 alignment ([tri2] section).
tri2: $(EXP)/tri2/.done.train
$(EXP)/tri2/.done.train: $(EXP)/tri1/.done.train $(DATA)/lang/.done $(DATA)/.done.features
	$(ASR) train-lda-mllt --config $(CONF) --section tri2 --data $(DATA)/$(TRAIN_SET) --lang $(DATA)/lang \
	  --ali $(EXP)/tri1/ali --out $(EXP)/tri2
	touch $@

# Speaker-adaptive training with per-speaker fMLLR on tri2's features and alignment ([tri3]);
# decoding it runs a speaker-independent pass, adapts to each speaker, and decodes again.
tri3: $(EXP)/tri3/.done.train
$(EXP)/tri3/.done.train: $(EXP)/tri2/.done.train $(DATA)/lang/.done $(DATA)/.done.features
	$(ASR) train-sat --config $(CONF) --section tri3 --data $(DATA)/$(TRAIN_SET) --lang $(DATA)/lang \
	  --prev $(EXP)/tri2 --out $(EXP)/tri3
	touch $@

# Neural systems of SYSTEMS (`make 6 NNET_DEVICE=cuda` on a GPU).
6 nnet: $(addsuffix /.done.train,$(addprefix $(EXP)/,$(filter dnn dnn_aug dnn_fmllr ctc,$(SYSTEMS)) $(SEED_COPIES)))

# The DNN's training data: TRAIN_SET, or with DNN_SPEED_PERTURB (e.g. 0.9,1.0,1.1) Kaldi
# nnet3's speed-perturbed copies of it, aligned by DNN_GMM like the original (a SAT system
# adapts to each speaker first, as Kaldi's align_fmllr.sh).
DNN_GMM ?= tri1
ifneq ($(DNN_SPEED_PERTURB),)
DNN_TRAIN := $(TRAIN_SET)_sp
DNN_ALI   := $(EXP)/$(DNN_GMM)_ali_sp
$(DATA)/$(DNN_TRAIN)/.done: $(DATA)/.done.data
	$(ASR) perturb-speed $(DATA)/$(TRAIN_SET) $(DATA)/$(DNN_TRAIN) --factors $(DNN_SPEED_PERTURB)
	$(ASR) features --config $(CONF) $(DATA)/$(DNN_TRAIN)
	$(ASR) features --config $(CONF) --section fbank --suffix _fbank $(DATA)/$(DNN_TRAIN)
	touch $@
$(DNN_ALI)/.done: $(EXP)/$(DNN_GMM)/.done.train $(DATA)/$(DNN_TRAIN)/.done
	$(ASR) align $(EXP)/$(DNN_GMM) --data $(DATA)/$(DNN_TRAIN) --out $(DNN_ALI)
	touch $@
DNN_DEPS  := $(DNN_ALI)/.done
else
DNN_TRAIN := $(TRAIN_SET)
DNN_ALI   := $(EXP)/$(DNN_GMM)/ali
DNN_DEPS  := $(DATA)/.done.fbank
endif

# Hybrid DNN-HMM on DNN_GMM's tied states ([dnn] section).
dnn: $(EXP)/dnn/.done.train
# train_<sys>: the training command of a neural system; $(1) its dir name, $(2) extra options
# (a seed copy's --set seed=k).
train_dnn = $(ASR) train-dnn --config $(CONF) --data $(DATA)/$(DNN_TRAIN)_fbank --ali $(DNN_ALI) \
  --gmm $(EXP)/$(DNN_GMM) --out $(EXP)/$(1) $(2) $(if $(NNET_DEVICE),--device $(NNET_DEVICE))
$(EXP)/dnn/.done.train: $(EXP)/$(DNN_GMM)/.done.train $(DNN_DEPS)
	$(call train_dnn,dnn)
	touch $@

# Kaldi's classic hybrid on fMLLR features ([dnn_fmllr] section): the DNN's training data in
# tri3's LDA+MLLT+fMLLR space, with the speakers' transforms of tri3's alignment of it (the
# DNN's own alignment when DNN_GMM is tri3 with speed perturbation); decoding runs tri3's
# speaker-independent pass and adapts before the network scores. It reads MFCC data dirs.
FMLLR_ALI := $(if $(and $(filter tri3,$(DNN_GMM)),$(DNN_SPEED_PERTURB)),$(DNN_ALI),$(EXP)/tri3_ali_$(DNN_TRAIN))
ifneq ($(FMLLR_ALI),$(DNN_ALI))
$(FMLLR_ALI)/.done: $(EXP)/tri3/.done.train $(if $(DNN_SPEED_PERTURB),$(DATA)/$(DNN_TRAIN)/.done)
	$(ASR) align $(EXP)/tri3 --data $(DATA)/$(DNN_TRAIN) --out $(FMLLR_ALI)
	touch $@
endif
dnn_fmllr: $(EXP)/dnn_fmllr/.done.train
train_dnn_fmllr = $(ASR) train-dnn --config $(CONF) --section dnn_fmllr --data $(DATA)/$(DNN_TRAIN) \
  --ali $(FMLLR_ALI) --gmm $(EXP)/tri3 --out $(EXP)/$(1) --set fmllr=true $(2) $(if $(NNET_DEVICE),--device $(NNET_DEVICE))
$(EXP)/dnn_fmllr/.done.train: $(EXP)/tri3/.done.train $(FMLLR_ALI)/.done
	$(call train_dnn_fmllr,dnn_fmllr)
	touch $@

# The [dnn] network on multi-condition data (system dnn_aug): the DNN's training data plus
# [augment] copies of it (silence, rooms, noise, telephone band, codecs, gain; asr augment),
# which keep their sources' alignments (asr copy-ali) instead of being realigned.
DNN_AUG_DATA := $(DNN_TRAIN)_aug
DNN_AUG_ALI  := $(DNN_ALI)_aug
$(DATA)/$(DNN_AUG_DATA)/.done: $(if $(DNN_SPEED_PERTURB),$(DATA)/$(DNN_TRAIN)/.done,$(DATA)/.done.data)
	$(ASR) augment --config $(CONF) $(DATA)/$(DNN_TRAIN) $(DATA)/$(DNN_AUG_DATA)
	$(ASR) features --config $(CONF) --section fbank --suffix _fbank $(DATA)/$(DNN_AUG_DATA)
	touch $@
$(DNN_AUG_ALI)/.done: $(DNN_DEPS) $(EXP)/$(DNN_GMM)/.done.train $(DATA)/$(DNN_AUG_DATA)/.done
	$(ASR) copy-ali $(DNN_ALI) $(DATA)/$(DNN_AUG_DATA) $(DNN_AUG_ALI) --model $(EXP)/$(DNN_GMM)
	touch $@
DATA_SUFFIX_dnn_aug := _fbank
dnn_aug: $(EXP)/dnn_aug/.done.train
train_dnn_aug = $(ASR) train-dnn --config $(CONF) --data $(DATA)/$(DNN_AUG_DATA)_fbank --ali $(DNN_AUG_ALI) \
  --gmm $(EXP)/$(DNN_GMM) --out $(EXP)/$(1) $(2) $(if $(NNET_DEVICE),--device $(NNET_DEVICE))
$(EXP)/dnn_aug/.done.train: $(EXP)/$(DNN_GMM)/.done.train $(DNN_AUG_ALI)/.done
	$(call train_dnn_aug,dnn_aug)
	touch $@

# The DNN's held-out utterances (whole training speakers it never trained on) as a dev set
# for a corpus without one: with DNN_TUNE_HELDOUT=yes every test set's DNN decode takes
# LMWT and penalty from the DECODE_OPTS_heldout grid decoded on them.
# (Each seed copy holds out its own speakers and tunes on them.)
DECODE_OPTS_heldout ?= --sweep 7:17
ifeq ($(DNN_TUNE_HELDOUT),yes)
$(foreach s,$(TEST_SETS),$(eval DECODE_OPTS_$(s)_dnn = --tune-on $(EXP)/@SYS@/decode_heldout))
$(foreach d,dnn $(filter dnn_seed%,$(SEED_COPIES)),$(eval $(EXP)/$(d)/.done.decode: $(EXP)/$(d)/decode_heldout/.done))
endif
$(EXP)/%/decode_heldout/.done: $(EXP)/%/.done.graph
	$(ASR) subset-data $(DATA)/$(DNN_TRAIN)_fbank $(DATA)/heldout_$*_fbank --utt-list $(EXP)/$*/heldout_utts
	$(ASR) decode --config $(CONF) $(EXP)/$* --data $(DATA)/heldout_$*_fbank --dir $(EXP)/$*/decode_heldout \
	  --nj $(NJ) $(DECODE_OPTS_heldout)
	touch $@

# End-to-end (Bi)LSTM trained with CTC on phone tokens, no alignment ([ctc] section).
ctc: $(EXP)/ctc/.done.train
train_ctc = $(ASR) train-ctc --config $(CONF) --data $(DATA)/$(TRAIN_SET)_fbank --lang $(DATA)/lang --out $(EXP)/$(1) \
  $(2) $(if $(NNET_DEVICE),--device $(NNET_DEVICE))
$(EXP)/ctc/.done.train: $(DATA)/lang/.done $(DATA)/.done.fbank
	$(call train_ctc,ctc)
	touch $@

# Seed copies: with NNET_SEEDS (e.g. "1 2") each neural system <sys> of SYSTEMS also gets
# <sys>_seed<k>, trained with --set seed=k and otherwise as <sys>, graphed and decoded as
# <sys> is (its own dev grid); the results table gives each system's mean and range.
define SEED_COPY
$(EXP)/$(1)_seed$(2)/.done.train: $(EXP)/$(1)/.done.train
	$$(call train_$(1),$(1)_seed$(2),--set seed=$(2))
	touch $$@
endef
$(foreach k,$(NNET_SEEDS),$(foreach s,$(filter dnn dnn_aug dnn_fmllr ctc,$(SYSTEMS)),$(eval $(call SEED_COPY,$(s),$(k)))))

# Graph and decoding of every system in SYSTEMS. In DECODE_OPTS_<set>, @SYS@ stands for
# the system being decoded (e.g. --tune-on $(EXP)/@SYS@/decode_dev). A CTC model is also
# decoded without lexicon or LM (greedy, into decode_<set>_greedy).
7 graph: $(SYSTEMS:%=$(EXP)/%/.done.graph)
$(EXP)/%/.done.graph: $(EXP)/%/.done.train $(DATA)/lang/.done
	$(ASR) mkgraph --config $(CONF) $(EXP)/$* --lang $(DATA)/lang $(MKGRAPH_OPTS_$(call base_sys,$*))
	touch $@
# The DNN has its GMM's tree: when that GMM is decoded too, its graph is copied, not rebuilt.
ifneq ($(filter $(DNN_GMM),$(SYSTEMS)),)
MKGRAPH_OPTS_dnn = --reuse $(EXP)/$(DNN_GMM)
MKGRAPH_OPTS_dnn_aug = --reuse $(EXP)/$(DNN_GMM)
$(foreach d,dnn dnn_aug $(filter dnn_seed% dnn_aug_seed%,$(SEED_COPIES)),$(eval $(EXP)/$(d)/.done.graph: $(EXP)/$(DNN_GMM)/.done.graph))
endif
ifneq ($(filter tri3,$(SYSTEMS)),)
MKGRAPH_OPTS_dnn_fmllr = --reuse $(EXP)/tri3
$(foreach d,dnn_fmllr $(filter dnn_fmllr_seed%,$(SEED_COPIES)),$(eval $(EXP)/$(d)/.done.graph: $(EXP)/tri3/.done.graph))
endif

8 decode: $(ALL_SYSTEMS:%=$(EXP)/%/.done.decode)
# A decode reads the test sets' features: MFCCs for GMMs, the _fbank copies for networks
# (the DNN's own training data may be speed-perturbed copies that leave them unmade).
$(foreach sys,$(ALL_SYSTEMS),$(eval $(EXP)/$(sys)/.done.decode: \
  $(if $(DATA_SUFFIX_$(call base_sys,$(sys))),$(DATA)/.done.fbank,$(DATA)/.done.features)))
TUNE_SET ?=
decode_opts = $(subst @SYS@,$(1),$(or $(DECODE_OPTS_$(2)_$(call base_sys,$(1))),$(DECODE_OPTS_$(2))))
sys_data = $(DATA)/$(2)$(DATA_SUFFIX_$(call base_sys,$(1)))
$(EXP)/%/.done.decode: $(EXP)/%/.done.graph
	$(if $(TUNE_SET),$(ASR) decode --config $(CONF) $(EXP)/$* --data $(call sys_data,$*,$(TUNE_SET)) \
	  --dir $(EXP)/$*/decode_$(TUNE_SET) --nj $(NJ) $(call decode_opts,$*,$(TUNE_SET)) \
	  $(foreach s,$(filter-out $(TUNE_SET),$(TEST_SETS)),--then $(call sys_data,$*,$(s)):$(EXP)/$*/decode_$(s)) && ,\
	$(foreach s,$(TEST_SETS),$(ASR) decode --config $(CONF) $(EXP)/$* --data $(call sys_data,$*,$(s)) \
	  --dir $(EXP)/$*/decode_$(s) --nj $(NJ) $(call decode_opts,$*,$(s)) && )) \
	$(if $(filter ctc%,$*),$(foreach s,$(TEST_SETS),$(ASR) decode $(EXP)/$* --data $(call sys_data,$*,$(s)) \
	    --dir $(EXP)/$*/decode_$(s)_greedy --search greedy &&)) true
	touch $@

9 results: $(ALL_SYSTEMS:%=$(EXP)/%/.done.decode)
	$(ASR) results $(EXP) --out $(RESULTS) --title "$(CORPUS)" --commands "make -C recipes/$(CORPUS)" --notes $(CURDIR)/notes.md \
	  $(RESULTS_LABELS)

# N-best rescoring with a word-level LSTM LM (asr lstm-lm, asr nbest-rescore; Kaldi's RNNLM
# rescoring), not part of `all`: `make lstm-rescore results`. The LM ([lstm_lm] section) learns
# LSTM_LM_TEXT (default: the training transcripts) over the lang dir's words; each system of
# LSTM_SYSTEMS has the lattices of decode_<set>$(LSTM_FROM) (ready at its LSTM_AFTER stamp, their LM
# costs LSTM_GRAPH_LM's) rescored into decode_<set>_lstm: LSTM weight, LMWT and penalty read on
# TUNE_SET's grid, the other sets rescored once with them.
LSTM_LM       := $(EXP)/lstm_lm
LSTM_LM_TEXT  ?=
LSTM_GRAPH_LM ?= $(LM)
LSTM_FROM     ?=
LSTM_AFTER    ?= .done.decode
LSTM_SYSTEMS  ?= $(filter-out ctc%,$(ALL_SYSTEMS))
LSTM_LM_OPTS  ?=
.PHONY: lstm-lm lstm-rescore
lstm-lm: $(LSTM_LM)/.done
$(LSTM_LM)/.done: $(DATA)/lang/.done $(LSTM_LM_TEXT)
	mkdir -p $(LSTM_LM)
	grep -v '^<eps> ' $(DATA)/lang/words.txt | cut -d' ' -f1 > $(LSTM_LM)/word_list.txt
	$(if $(LSTM_LM_TEXT),,cut -d' ' -f2- $(DATA)/$(TRAIN_SET)/text > $(LSTM_LM)/train_text.txt)
	$(ASR) lstm-lm train $(LSTM_LM) $(or $(LSTM_LM_TEXT),$(LSTM_LM)/train_text.txt) --vocab $(LSTM_LM)/word_list.txt \
	  --config $(CONF) $(if $(NNET_DEVICE),--device $(NNET_DEVICE)) $(LSTM_LM_OPTS)
	$(ASR) lstm-lm eval $(LSTM_LM) $(DATA)/$(TUNE_SET)/text --kaldi-text --ngram $(LSTM_GRAPH_LM) \
	  | tee $(LSTM_LM)/$(TUNE_SET).ppl
	touch $@
lstm-rescore: $(LSTM_SYSTEMS:%=$(EXP)/%/.done.lstm)
$(EXP)/%/.done.lstm: $(EXP)/%/$(LSTM_AFTER) $(LSTM_LM)/.done
	$(ASR) nbest-rescore $(EXP)/$* --config $(CONF) --graph-lm $(LSTM_GRAPH_LM) --lstm-lm $(LSTM_LM) \
	  --data $(call sys_data,$*,$(TUNE_SET)) --lattices $(EXP)/$*/decode_$(TUNE_SET)$(LSTM_FROM) \
	  --dir $(EXP)/$*/decode_$(TUNE_SET)_lstm --sweep 7:17 $(if $(NNET_DEVICE),--device $(NNET_DEVICE))
	$(foreach s,$(filter-out $(TUNE_SET),$(TEST_SETS)),$(ASR) nbest-rescore $(EXP)/$* --config $(CONF) \
	  --graph-lm $(LSTM_GRAPH_LM) --lstm-lm $(LSTM_LM) --data $(call sys_data,$*,$(s)) \
	  --lattices $(EXP)/$*/decode_$(s)$(LSTM_FROM) --dir $(EXP)/$*/decode_$(s)_lstm \
	  --tune-on $(EXP)/$*/decode_$(TUNE_SET)_lstm $(if $(NNET_DEVICE),--device $(NNET_DEVICE)) &&) true
	touch $@

# The textbook ablation: one network per row of ablation.toml (activations, initialisations,
# optimisers, batch norm, dropout, weight decay, pretraining, architectures, curriculum,
# ensembles, a TPE search), the same data and DNN_GMM alignment, decoded on dev (the grid)
# and on test once with dev's choice, tabled in ABLATION.md. Rows resume; ABLATION_ONLY=a,b
# runs only those.
ABLATION_ROWS ?= $(CURDIR)/ablation.toml
ABLATION_DEV  ?= dev
ablation: $(EXP)/$(DNN_GMM)/.done.graph $(DNN_DEPS) $(DATA)/.done.fbank
	$(ASR) ablation $(ABLATION_ROWS) --config $(CONF) --data $(DATA)/$(DNN_TRAIN)_fbank --ali $(DNN_ALI) \
	  --gmm $(EXP)/$(DNN_GMM) --lang $(DATA)/lang --dev $(DATA)/$(ABLATION_DEV)_fbank --test $(DATA)/test_fbank \
	  --out $(EXP)/ablation --table $(CURDIR)/ABLATION.md --title "Ablation: $(CORPUS)" \
	  $(if $(ABLATION_ONLY),--only $(ABLATION_ONLY)) --nj $(NJ)

clean:
	rm -rf $(DATA) $(EXP)
