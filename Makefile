.PHONY: check demo bench deb
check:
	./scripts/test
demo:
	./scripts/demo
bench:
	.venv/bin/python bench/bench_regex.py
deb:
	./scripts/deb
