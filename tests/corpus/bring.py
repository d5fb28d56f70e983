#!/usr/bin/env python3
"""Brings the corpus's functions to tests/corpus/sources/<case>/, each as its authors deploy it.

For every case of cases.json: the files under `root` at `commit` of `repo`, read from a local
clone at $CORPUS_MIRRORS/<owner>+<name>/repo (default /work/.mirror, where edgehook's tool
library fetches repositories); then, if the case says so, its npm dependencies installed from
its package.json (`npm install --omit=dev`) and its TypeScript bundled with esbuild (`build`).
The code stays out of the repository: tests/corpus/sources/ is ignored by git.

    tests/corpus/bring.py [case ...]
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
MIRRORS = os.environ.get("CORPUS_MIRRORS", "/work/.mirror")


def git_dir(repo):
    base = os.path.join(MIRRORS, repo.replace("/", "+"), "repo")
    return os.path.join(base, ".git") if os.path.isdir(os.path.join(base, ".git")) else base


def bring(case):
    target = os.path.join(HERE, "sources", case["name"])
    git = git_dir(case["repo"])
    if not os.path.isdir(git):
        print(f"{case['name']}: no clone of {case['repo']} in {MIRRORS}; skipped")
        return False
    root = case.get("root", "").strip("/")
    with tempfile.TemporaryDirectory() as work:
        archive = subprocess.run(
            ["git", "--git-dir", git, "archive", case["commit"], root or "."],
            check=True, capture_output=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", work], input=archive, check=True)
        source = os.path.join(work, root)
        shutil.rmtree(target, ignore_errors=True)
        if case.get("files"):
            for path in case["files"]:
                os.makedirs(os.path.dirname(os.path.join(target, path)) or target, exist_ok=True)
                shutil.copy(os.path.join(source, path), os.path.join(target, path))
        else:
            shutil.copytree(source, target)
    for path, content in case.get("write", {}).items():
        with open(os.path.join(target, path), "w") as out:
            out.write(content)
    if case.get("npm"):
        subprocess.run(
            ["npm", "install", "--omit=dev", "--ignore-scripts", "--no-audit", "--no-fund", "--no-package-lock", "--loglevel=error"],
            cwd=target, check=True,
        )
    if case.get("layer_npm"):
        # npm packages the function expects from Lambda (the AWS SDK v2 of older runtimes),
        # given as a layer, as users give them on nodejs20.x.
        layer = os.path.join(HERE, "sources", case["name"] + ".layer", "nodejs")
        shutil.rmtree(os.path.dirname(layer), ignore_errors=True)
        os.makedirs(layer)
        subprocess.run(["npm", "install", "--prefix", layer, "--ignore-scripts", "--no-audit", "--no-fund", "--no-package-lock", "--loglevel=error"] + case["layer_npm"], check=True)
    if case.get("build"):
        build = case["build"]
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error", "--no-package-lock", "esbuild@0.25.12"] + build.get("packages", []), cwd=target, check=True)
        subprocess.run(
            [os.path.join(target, "node_modules/.bin/esbuild"), build["entry"], "--bundle", "--platform=node", "--target=node20",
             "--format=" + build.get("format", "cjs"), "--outfile=" + build["out"]] + build.get("flags", []),
            cwd=target, check=True,
        )
        # The package deployed is the bundle alone, as the authors ship it.
        bundle = os.path.join(target, build["out"])
        with open(bundle, "rb") as f:
            content = f.read()
        shutil.rmtree(target)
        os.makedirs(os.path.dirname(os.path.join(target, build["out"])), exist_ok=True)
        with open(bundle, "wb") as f:
            f.write(content)
    print(f"{case['name']}: {case['repo']}@{case['commit'][:8]} {root or '/'}")
    return True


def main():
    with open(os.path.join(HERE, "cases.json")) as f:
        cases = json.load(f)
    wanted = set(sys.argv[1:])
    brought = 0
    for case in cases:
        if wanted and case["name"] not in wanted:
            continue
        try:
            brought += bring(case)
        except subprocess.CalledProcessError as error:
            print(f"{case['name']}: failed: {error}")
            shutil.rmtree(os.path.join(HERE, "sources", case["name"]), ignore_errors=True)
    print(f"{brought} cases brought to {os.path.join(HERE, 'sources')}")


if __name__ == "__main__":
    main()
