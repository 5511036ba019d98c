"""What each file of tests/data/bad/vcf/ must be refused with: (record named, reason word).

One table for the two tests that feed the corpus in: the pipeline's library-level test
(tests/pipeline/test_preprocess.py) and the CLI-level bad-input test (tests/test_bad_input.py).
`None` where the file has no record to name (empty, not gzip at all).
"""

BAD_VCF: dict[str, tuple[str | None, str]] = {
    "bad-genotype.vcf": ("line 7 (chr1:300)", "GT"),
    "bad-pos.vcf": ("line 7 (chr1:abc)", "position"),
    "empty.vcf": (None, "empty"),
    "garbage.vcf.gz": (None, "decompress"),
    "header-cut.vcf": ("line 3", "header"),
    "missing-columns.vcf": ("line 7 (chr1:200)", "columns"),
    "missing-sample.vcf": ("line 7 (chr1:400)", "samples"),
    "not-a-vcf.txt": ("line 1", "not a VCF"),
    "no-eof-marker.vcf.gz": ("after chr1:", "truncated"),
    "truncated-at-block.vcf.gz": ("(chr2:", "BGZF"),
    "truncated-bgzf.vcf.gz": ("after chr2:", "BGZF"),
    "truncated-gzip.vcf.gz": ("after chr2:", "truncated"),
    "truncated-line.vcf": ("line 55 (chr1:590)", "columns"),
}
