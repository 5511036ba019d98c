"""VCF → Parquet: agreement with `bcftools norm -m -any`, CSQ per allele, input forms, bad inputs."""

from __future__ import annotations

import collections
import gzip
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pysam
import pysam.bcftools
import pytest
from bad_vcf_expectations import BAD_VCF

from sovaudit.pipeline.csq import vep_allele
from sovaudit.pipeline.errors import VcfInputError
from sovaudit.pipeline.preprocess import PreprocessOptions, preprocess
from sovaudit.pipeline.synth import SynthSpec, write_vcf

REPO = Path(__file__).resolve().parents[2]
SHARED_VCF = REPO / "../shared/data/vcf"
BAD = REPO / "tests/data/bad/vcf"

HEADER = """##fileformat=VCFv4.2
##contig=<ID=chr1,length=100000>
##INFO=<ID=DP,Number=1,Type=Integer,Description="Depth">
##INFO=<ID=AF,Number=A,Type=Float,Description="Allele frequency">
##INFO=<ID=CSQ,Number=.,Type=String,Description="Consequence annotations from Ensembl VEP. Format: {fmt}">
##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">
##FORMAT=<ID=AD,Number=R,Type=Integer,Description="Allelic depths">
#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS1\tS2
"""


# Other projects' test VCFs, as Debian packages them: the conformance tests compare our normalization with
# `bcftools norm -m -any` on data nobody here wrote. Their README (beside the checkout, in
# ../shared/data/vcf) asks that nothing of them be copied into this project, so the repository does not
# carry them; the tests look there or in $SOVAUDIT_CONFORMANCE_VCF and otherwise skip, saying which file
# is missing and where it comes from.
CONFORMANCE_SOURCES = {
    "freebayes.vcf.gz": "PyVCF test suite (Debian python-pyvcf-examples)",
    "example-4.1.vcf": "PyVCF test suite (Debian python-pyvcf-examples)",
    "test.vcf.gz": "cyvcf2 test suite (Debian python3-cyvcf2)",
    "exac.vcf.gz": "vcfanno examples (Debian vcfanno-examples)",
}


def shared(name: str) -> Path:
    import os

    folders = [Path(os.environ["SOVAUDIT_CONFORMANCE_VCF"])] if os.environ.get("SOVAUDIT_CONFORMANCE_VCF") else []
    folders.append(SHARED_VCF.resolve())
    for folder in folders:
        if (folder / name).exists():
            return folder / name
    pytest.skip(f"conformance VCF {name} is not here: it is third-party test data ({CONFORMANCE_SOURCES[name]}) "
                f"that the repository does not carry (its licence note asks not to copy it); looked in "
                f"{', '.join(str(f) for f in folders)}; set SOVAUDIT_CONFORMANCE_VCF to a folder holding it "
                "to run this bcftools comparison")


def rows(parquet: Path) -> list[dict]:
    return pq.read_table(parquet).to_pylist()


def keys_from_parquet(parquet: Path) -> collections.Counter:
    table = pq.read_table(parquet, columns=["reference_name", "start_position", "reference_bases",
                                            "alternate_bases"]).to_pylist()
    return collections.Counter(
        (r["reference_name"], r["start_position"] + 1, r["reference_bases"],
         r["alternate_bases"][0]["alt"] if r["alternate_bases"] else ".") for r in table)


def keys_from_bcftools(source: Path, tmp_path: Path) -> collections.Counter:
    """What `bcftools norm -m -any` gives, run directly (contig lines added first where the file lacks them)."""
    text = gzip.open(source, "rt").read() if source.suffix == ".gz" else source.read_text()
    lines = text.splitlines()
    declared = {line.split("ID=")[1].split(",")[0].rstrip(">") for line in lines if line.startswith("##contig")}
    used = dict.fromkeys(line.split("\t")[0] for line in lines if line and not line.startswith("#"))
    extra = [f"##contig=<ID={c}>" for c in used if c not in declared]
    chrom_at = next(i for i, line in enumerate(lines) if line.startswith("#CHROM"))
    fixed = tmp_path / "expected-input.vcf"
    fixed.write_text("\n".join(lines[:chrom_at] + extra + lines[chrom_at:]) + "\n")
    out = tmp_path / "expected.vcf"
    pysam.bcftools.norm("-m", "-any", "-o", str(out), str(fixed), catch_stdout=False)
    return collections.Counter(
        (f[0], int(f[1]), f[3], f[4]) for f in (line.split("\t") for line in out.read_text().splitlines()
                                                if not line.startswith("#")))


@pytest.mark.parametrize("name", ["freebayes.vcf.gz", "example-4.1.vcf", "test.vcf.gz", "exac.vcf.gz"])
def test_rows_equal_bcftools_norm_split_on_real_vcfs(name: str, tmp_path: Path) -> None:
    source = shared(name)
    result = preprocess(source, tmp_path / "out.parquet")
    expected = keys_from_bcftools(source, tmp_path)
    assert keys_from_parquet(result.parquet) == expected
    assert result.records_normalized == sum(expected.values())
    assert result.records_in == sum(1 for line in (gzip.open(source, "rt") if name.endswith(".gz")
                                                   else open(source)) if not line.startswith("#"))


def test_exac_csq_entries_stay_with_their_allele(tmp_path: Path) -> None:
    # ExAC was split before release: a G>T line still carries the A allele's entries (ALLELE_NUM 1)
    # of the original G>A,T site. Each row must keep exactly the entries naming its own allele.
    source = shared("exac.vcf.gz")
    result = preprocess(source, tmp_path / "out.parquet")
    assert result.has_csq
    original = {}
    for line in gzip.open(source, "rt"):
        if not line.startswith("#"):
            f = line.split("\t")
            csq = next((kv[4:] for kv in f[7].split(";") if kv.startswith("CSQ=")), "")
            original[(f[0], int(f[1]), f[3], f[4])] = csq.split(",") if csq else []
    table = rows(result.parquet)
    assert sum(1 for r in table if r["alternate_bases"][0]["CSQ"]) > 100
    mixed = 0
    for r in table:
        ref, alt = r["reference_bases"], r["alternate_bases"][0]["alt"]
        vep_form = vep_allele(ref, [alt], alt)
        entries = original[(r["reference_name"], r["start_position"] + 1, ref, alt)]
        expected = [e.split("|")[2] for e in entries if e.split("|")[0] == vep_form]
        mixed += len(expected) < len(entries)
        assert [e["Feature"] for e in r["alternate_bases"][0]["CSQ"]] == expected
    assert mixed > 0


def test_test_vcf_csq_without_allele_fields_keeps_every_entry(tmp_path: Path) -> None:
    source = shared("test.vcf.gz")
    table = rows(preprocess(source, tmp_path / "out.parquet").parquet)
    first = table[0]
    csq = first["alternate_bases"][0]["CSQ"]
    assert csq[0]["Consequence"] == "upstream_gene_variant"
    assert csq[0]["Gene"] == "ENSG00000223972"
    assert len(first["call"]) == 189
    # snpEff's ANN has no VEP "Format:" and stays a plain repeated string
    assert isinstance(first["ANN"], list)


def test_multiallelic_csq_split_by_allele_num(tmp_path: Path) -> None:
    source = tmp_path / "multi.vcf"
    source.write_text(HEADER.format(fmt="Allele|Consequence|ALLELE_NUM") +
                      "chr1\t100\t.\tA\tC,G\t50\tPASS\tAF=0.1,0.2;CSQ=C|missense|1,G|stop_gained|2,C|intron|1"
                      "\tGT:AD\t0/1:5,3,0\t1/2:0,4,4\n")
    table = rows(preprocess(source, tmp_path / "out.parquet").parquet)
    by_alt = {r["alternate_bases"][0]["alt"]: r for r in table}
    assert [e["Consequence"] for e in by_alt["C"]["alternate_bases"][0]["CSQ"]] == ["missense", "intron"]
    assert [e["Consequence"] for e in by_alt["G"]["alternate_bases"][0]["CSQ"]] == ["stop_gained"]
    assert by_alt["G"]["alternate_bases"][0]["AF"] == pytest.approx(0.2)


def test_indel_site_csq_matched_by_vep_allele_string(tmp_path: Path) -> None:
    # VEP drops the base shared by all alleles of an indel site: ATT>A,AT is written "-" and "T".
    source = tmp_path / "indel.vcf"
    source.write_text(HEADER.format(fmt="Allele|Consequence") +
                      "chr1\t100\t.\tATT\tA,AT\t50\tPASS\tCSQ=-|frameshift,T|inframe\tGT:AD\t0/1:5,3,0\t0/2:0,4,4\n")
    table = rows(preprocess(source, tmp_path / "out.parquet").parquet)
    by_alt = {r["alternate_bases"][0]["alt"]: r["alternate_bases"][0]["CSQ"] for r in table}
    assert [e["Consequence"] for e in by_alt["A"]] == ["frameshift"]
    assert [e["Consequence"] for e in by_alt["AT"]] == ["inframe"]


def test_genotypes_phasing_no_calls_and_haploid(tmp_path: Path) -> None:
    source = tmp_path / "gt.vcf"
    source.write_text(HEADER.format(fmt="Allele") +
                      "chr1\t100\trs1;rs2\tA\tC\t.\tq10;s50\t.\tGT:AD\t1|0:3,4\t./.:.\n"
                      "chr1\t200\t.\tA\tG\t20\tPASS\tDP=4\tGT\t1\t.\n")
    table = rows(preprocess(source, tmp_path / "out.parquet").parquet)
    first, second = table
    assert [c["genotype"] for c in first["call"]] == [[1, 0], [-1, -1]]
    assert [c["phased"] for c in first["call"]] == [True, False]
    assert first["call"][0]["AD"] == [3, 4]
    assert first["names"] == ["rs1", "rs2"]
    assert first["filter"] == ["q10", "s50"]
    assert first["quality"] is None
    assert [c["genotype"] for c in second["call"]] == [[1], [-1]]
    assert [c["name"] for c in second["call"]] == ["S1", "S2"]
    assert (second["start_position"], second["end_position"]) == (199, 200)


def test_bgzf_plain_gzip_and_uncompressed_inputs_give_the_same_table(tmp_path: Path) -> None:
    spec = SynthSpec(records=400, samples=3, seed=11)
    tables = []
    for compression in ("bgzf", "gzip", "none"):
        source = write_vcf(tmp_path / f"in-{compression}.vcf{'' if compression == 'none' else '.gz'}", spec,
                           compression=compression)
        result = preprocess(source, tmp_path / f"{compression}.parquet")
        tables.append(pq.read_table(result.parquet))
    assert tables[0].num_rows > 400
    assert tables[0].equals(tables[1]) and tables[0].equals(tables[2])


def test_bcf_input_gives_the_same_table_as_its_vcf(tmp_path: Path) -> None:
    vcf = write_vcf(tmp_path / "in.vcf.gz", SynthSpec(records=300, samples=2, seed=12))
    bcf = tmp_path / "in.bcf"
    pysam.bcftools.view("-Ob", "-o", str(bcf), str(vcf), catch_stdout=False)
    from_vcf = pq.read_table(preprocess(vcf, tmp_path / "vcf.parquet").parquet)
    from_bcf = pq.read_table(preprocess(bcf, tmp_path / "bcf.parquet").parquet)
    assert from_vcf.num_rows > 300 and from_bcf.equals(from_vcf)


def test_a_header_without_records_gives_an_empty_table_and_zero_counts(tmp_path: Path) -> None:
    source = tmp_path / "empty-body.vcf"
    source.write_text("##fileformat=VCFv4.2\n##contig=<ID=chr1>\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")
    result = preprocess(source, tmp_path / "out.parquet")
    assert (result.records_in, result.records_normalized) == (0, 0)
    assert pq.read_table(result.parquet).num_rows == 0


@pytest.mark.parametrize("declared", ["none", "some"])
def test_contigs_missing_from_the_header_are_added(declared: str, tmp_path: Path) -> None:
    full = write_vcf(tmp_path / "full.vcf", SynthSpec(records=300, samples=2, seed=5), compression="none")
    keep = () if declared == "none" else ("##contig=<ID=chr1,",)
    lines = [line for line in full.read_text().splitlines()
             if not line.startswith("##contig") or line.startswith(keep)]
    stripped = tmp_path / "stripped.vcf"
    stripped.write_text("\n".join(lines) + "\n")
    expected = pq.read_table(preprocess(full, tmp_path / "full.parquet").parquet)
    got = pq.read_table(preprocess(stripped, tmp_path / "stripped.parquet").parquet)
    assert got.equals(expected)
    assert set(got.column("reference_name").to_pylist()) == {"chr1", "chr2", "chr3"}


def test_reference_check_passes_on_matching_ref_and_names_a_mismatch(tmp_path: Path) -> None:
    fasta = tmp_path / "ref.fa"
    source = write_vcf(tmp_path / "in.vcf", SynthSpec(records=200, samples=2, seed=8), compression="none",
                       reference_fasta=fasta)
    ok = preprocess(source, tmp_path / "ok.parquet", PreprocessOptions(reference=fasta))
    assert ok.records_in == 200
    lines = source.read_text().splitlines()
    index = next(i for i, line in enumerate(lines) if not line.startswith("#") and line.split("\t")[3] == "A"
                 and len(line.split("\t")[4]) == 1)
    fields = lines[index].split("\t")
    fields[3], fields[4] = "G", "T" if fields[4] != "T" else "C"
    lines[index] = "\t".join(fields)
    bad = tmp_path / "bad.vcf"
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(VcfInputError) as caught:
        preprocess(bad, tmp_path / "bad.parquet", PreprocessOptions(reference=fasta))
    assert f"{fields[0]}:{fields[1]}" in str(caught.value)
    assert not (tmp_path / "bad.parquet").exists()


BAD_CASES = BAD_VCF


@pytest.mark.parametrize("name", sorted(BAD_CASES))
def test_bad_input_error_names_the_file_and_record_and_writes_nothing(name: str, tmp_path: Path) -> None:
    source = tmp_path / name
    shutil.copy(BAD / name, source)
    out = tmp_path / "out.parquet"
    with pytest.raises(VcfInputError) as caught:
        preprocess(source, out)
    record, reason = BAD_CASES[name]
    message = str(caught.value)
    assert message.startswith(str(source))
    if record is not None:
        assert record in message
    assert reason in message
    assert list(tmp_path.iterdir()) == [source]


def test_bad_corpus_has_a_case_for_every_file() -> None:
    assert sorted(p.name for p in BAD.iterdir() if p.name != "README.md") == sorted(BAD_CASES)


def test_missing_values_in_split_records_are_missing_not_sentinels(tmp_path: Path) -> None:
    # Splitting C,G turns a missing AD into ".,." (all missing: no list); "5,.,2" keeps its
    # present values and marks the missing one with Variant Transforms' numeric sentinel.
    source = tmp_path / "missing.vcf"
    source.write_text(HEADER.format(fmt="Allele") +
                      "chr1\t100\t.\tA\tC,G\t50\tPASS\tAF=0.1,.\tGT:AD\t./.:.\t0/1:5,.,2\n")
    table = rows(preprocess(source, tmp_path / "out.parquet").parquet)
    by_alt = {r["alternate_bases"][0]["alt"]: r for r in table}
    assert [c["AD"] for c in by_alt["C"]["call"]] == [None, [5, -2147483648]]
    assert [c["AD"] for c in by_alt["G"]["call"]] == [None, [5, 2]]
    assert by_alt["G"]["alternate_bases"][0]["AF"] is None


def test_small_text_blocks_are_gathered_into_whole_row_groups(tmp_path: Path) -> None:
    source = write_vcf(tmp_path / "in.vcf.gz", SynthSpec(records=3000, samples=8, seed=13))
    small = preprocess(source, tmp_path / "small.parquet", PreprocessOptions(block_bytes=32 * 1024))
    whole = preprocess(source, tmp_path / "whole.parquet")
    metadata = pq.ParquetFile(small.parquet).metadata
    assert metadata.num_row_groups == 1 and metadata.num_rows == small.records_normalized
    assert pq.read_table(small.parquet).equals(pq.read_table(whole.parquet))


def test_freebayes_values_match_what_bcftools_norm_writes(tmp_path: Path) -> None:
    # Beyond the record keys: per-allele INFO, genotypes, Number=A and Number=G FORMAT values of
    # the split records must be bcftools' own, read back with pysam from its normalized VCF.
    source = shared("freebayes.vcf.gz")
    table = rows(preprocess(source, tmp_path / "out.parquet").parquet)
    keys_from_bcftools(source, tmp_path)  # writes tmp_path / "expected.vcf"
    expected = {}
    with pysam.VariantFile(str(tmp_path / "expected.vcf")) as normalized:
        samples = list(normalized.header.samples)
        for rec in normalized:
            calls = [([-1 if a is None else a for a in rec.samples[s]["GT"]], rec.samples[s]["AO"][0],
                      list(rec.samples[s]["GL"]) if rec.samples[s]["GL"][0] is not None else None)
                     for s in samples]
            expected[(rec.chrom, rec.pos, rec.ref, rec.alts[0])] = (rec.info["AC"][0], rec.info["TYPE"][0], calls)
    assert len(expected) == len(table)
    for row in table:
        allele = row["alternate_bases"][0]
        key = (row["reference_name"], row["start_position"] + 1, row["reference_bases"], allele["alt"])
        ac, kind, calls = expected[key]
        assert (allele["AC"], allele["TYPE"]) == (ac, kind), key
        assert [(c["genotype"], c["AO"]) for c in row["call"]] == [(gt, ao) for gt, ao, _ in calls], key
        for call, (_, _, likelihoods) in zip(row["call"], calls, strict=True):
            # bcftools prints float32 in its shortest form; pysam widens the same float32 to double
            assert call["GL"] == (pytest.approx(likelihoods, rel=1e-6) if likelihoods else None), key
