"""What the pipeline command tests (token_classification.py, question_answering.py,
zero_shot_classification.py) share: the tfx binary and the shared data (exit 77 without them),
failures counted rather than raised, tfx commands run, and a BERT model of a tiny family's
config at bert-base-uncased's vocabulary (random weights) beside the real tokenizer."""
import json, math, os, shutil, subprocess, sys


class PipelineTest:
    def __init__(self, *families):
        self.tfx = sys.argv[1]
        self.root = os.environ.get("TFX_TEST_DATA", "")
        for family in families:
            if not self.root or not os.path.isdir(os.path.join(self.root, "tiny", family)):
                print(f"skipped: TFX_TEST_DATA does not point at the shared data with tiny/{family}")
                sys.exit(77)
        self.failed = False

    def fail(self, message):
        self.failed = True
        print("FAIL", message)

    def attempt(self, *args):
        """`tfx ARGS`, whatever its exit status."""
        return subprocess.run([self.tfx, *args], capture_output=True, text=True)

    def run(self, *args):
        """`tfx ARGS`'s standard output; stops the test when it fails."""
        out = self.attempt(*args)
        if out.returncode != 0:
            raise SystemExit(f"{' '.join(args[:2])} failed: {out.stderr.strip()}")
        return out.stdout

    def bert_model(self, folder, family, id2label=None, tokenizer_config=True):
        """tiny/FAMILY's config at bert-base-uncased's 30522 ids (and `id2label` when given),
        random weights written to FOLDER with the tokenizer beside them; returns the config."""
        config = json.load(open(os.path.join(self.root, "tiny", family, "config.json")))
        config["vocab_size"] = 30522
        if id2label is not None:
            config["id2label"] = {str(i): label for i, label in enumerate(id2label)}
            config["label2id"] = {label: i for i, label in enumerate(id2label)}
        config_path = folder + ".config.json"
        json.dump(config, open(config_path, "w"))
        self.run("init-model", "--config", config_path, "--out", folder)
        for name in ("tokenizer.json", "tokenizer_config.json") if tokenizer_config else ("tokenizer.json",):
            shutil.copy(os.path.join(self.root, "tokenizers", "bert-base-uncased", name), folder)
        return config

    def finish(self):
        sys.exit(1 if self.failed else 0)


def softmax(values):
    top = max(values)
    exps = [math.exp(v - top) for v in values]
    total = sum(exps)
    return [e / total for e in exps]
