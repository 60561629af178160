# The two commands a newcomer needs: `make demo` and `make test`. Each creates or refreshes .venv
# first; a stamp keyed on the requirement files makes a second run skip the install.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
VPY := $(VENV)/bin/python
REQ_FILES := requirements.txt requirements-ros.txt constraints.txt setup.py scripts/setup_venv.sh
REQ_HASH := $(shell cat $(REQ_FILES) 2>/dev/null | sha256sum | cut -c1-16)
STAMP := $(VENV)/.installed-$(REQ_HASH)$(if $(ROS_DISTRO),-system-ros-$(ROS_DISTRO),)
# DDS traffic never leaves this host; each shell gets its own domain unless one is set (20-99:
# domains above 101 map into Linux's ephemeral port range and can collide with other sockets).
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST
export ROS_DOMAIN_ID ?= $(shell echo $$(( $$$$ % 80 + 20 )))
PYTEST_ARGS ?=

.PHONY: venv test demo clean-venv

venv: $(STAMP)

$(STAMP):
	@PYTHON=$(PYTHON) VENV=$(VENV) bash scripts/setup_venv.sh
	@rm -f $(VENV)/.installed-* && touch $@

test: $(STAMP)
	@echo "ROS_DOMAIN_ID=$$ROS_DOMAIN_ID ROS_AUTOMATIC_DISCOVERY_RANGE=$$ROS_AUTOMATIC_DISCOVERY_RANGE"
	@$(VPY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests: that is a failure"; exit 1; fi; \
	  exit $$rc

demo: $(STAMP)
	@$(VENV)/bin/xd-rcdepth demo --out out/demo

clean-venv:
	rm -rf $(VENV)
