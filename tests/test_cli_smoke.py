"""The front door answers without importing the cloud clients."""

import subprocess
import sys


def test_help_lists_subcommands_and_imports_no_google_client() -> None:
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from sovaudit.cli import main\n"
        "result = CliRunner().invoke(main, ['--help'])\n"
        "assert result.exit_code == 0, result.output\n"
        "assert 'sim' in result.output\n"
        "loaded = [m for m in sys.modules if m.startswith('google.cloud')]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
