"""The bundled GGUF as a Hugging Face model folder, for engines that need one (vLLM).

vLLM loads Hugging Face folders; the bundled SmolLM2-135M-Instruct ships only as a GGUF file.
transformers can read the GGUF into a float32 torch model (``gguf_file=``), which then saves as
safetensors once the GGUF "quantizer" marker is dropped (``save_pretrained`` refuses a model it
thinks is quantized). The logits are the GGUF's own. Needs ``torch``, ``transformers`` and ``gguf``
(e.g. in a vLLM venv); nothing here is imported by the rest of Trustee.

    python -m trustee_env.serve.convert /tmp/smollm2-hf
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from trustee_env.serve.local import bundled_gguf

__all__ = ["export_hf_folder"]


def export_hf_folder(out: str | Path, gguf: str | Path | None = None) -> Path:
    """Write ``gguf`` (default: the bundled model) to ``out`` as a Hugging Face folder; return ``out``.

    A folder that already holds a converted model (``config.json`` and weights) is reused as it is.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = Path(out)
    if (out / "config.json").exists() and any(out.glob("*.safetensors")):
        return out
    path = Path(gguf) if gguf else bundled_gguf()
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    # SmolLM2's chat turns end with <|im_end|>; transformers reads eos from the GGUF as <|im_start|>.
    if "<|im_end|>" in tokenizer.get_vocab():
        tokenizer.eos_token = "<|im_end|>"
        model.config.eos_token_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
        if model.generation_config is not None:
            model.generation_config.eos_token_id = model.config.eos_token_id
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def main() -> None:
    """``python -m trustee_env.serve.convert OUT [--gguf PATH]``: print the folder as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("out", help="folder to write (reused when it already holds a converted model)")
    parser.add_argument("--gguf", help="GGUF file (default: the bundled SmolLM2-135M-Instruct)")
    args = parser.parse_args()
    print(json.dumps({"model_dir": str(export_hf_folder(args.out, args.gguf))}))


if __name__ == "__main__":
    main()
