.PHONY: check demo bench
check:
	./scripts/test
demo:
	./scripts/demo
bench:
	.venv/bin/python bench/bench_regex.py
