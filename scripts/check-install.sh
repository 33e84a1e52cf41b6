#!/usr/bin/env bash
# The installed SDK on its own: install to a temporary prefix, build the examples against
# that prefix alone, use the third-party plugin from the installed tools, then move the
# prefix and check that the tools still work. Needs a built ./build and TFX_TEST_DATA.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
prefix="$work/prefix"
model="${TFX_TEST_DATA:?TFX_TEST_DATA must point at the shared test data}/models/tinystories-656k"

cmake --install build --prefix "$prefix" >/dev/null
for example in third_party_plugin host_app c_host; do
    cmake -S "examples/$example" -B "$work/build-$example" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
    cmake --build "$work/build-$example"
done
plugin_dir="$work/build-third_party_plugin/plugins"

echo "== tfx-plugins list sees the third-party plugin"
TFX_PLUGIN_PATH="$plugin_dir" "$prefix/bin/tfx-plugins" list | grep -E "^online-softmax .* ok$"
echo "== the plugin's own test"
ctest --test-dir "$work/build-third_party_plugin" --output-on-failure
echo "== tfx from the prefix generates with the plugin"
TFX_PLUGIN_PATH="$plugin_dir" "$prefix/bin/tfx" generate --model "$model" "Once upon a time" --max-new-tokens 16 \
    --greedy --attn-implementation online-softmax --json | grep -F '"new_tokens":[313,598,303,1049'
echo "== the host app"
"$work/build-host_app/host_app" "$model" "Once upon a time" 16 | grep -F "Once upon a time, a little girl named Lily"

echo "== the C host"
"$work/build-c_host/c_host" "$model" "Once upon a time" 16 | grep -F "Once upon a time, a little girl named Lily"

if [ -d "$prefix/lib/python3/dist-packages/tfx" ]; then
    echo "== the Python package from the prefix"
    PYTHONPATH="$prefix/lib/python3/dist-packages" /usr/bin/python3 -c "
import tfx, sys
model = tfx.AutoModelForCausalLM.from_pretrained(sys.argv[1])
out = model.generate([1, 80, 147, 201, 282, 57], max_new_tokens=8, do_sample=False, eos_token_id=None)
assert out[0][6:] == [313, 598, 303, 1049, 1468, 267, 628, 333], out
print('python package from the prefix: ok')" "$model"
fi

echo "== the install tree after a move"
mv "$prefix" "$work/moved"
"$work/moved/bin/tfx-plugins" list | grep -E "^llama .* ok$"
"$work/moved/bin/tfx" generate --model "$model" --input-ids 1,80,147,201,282,57 --max-new-tokens 8 --greedy --json \
    | grep -F '"new_tokens":[313,598,303,1049,1468,267,628,333]'
if [ -d "$work/moved/lib/python3/dist-packages/tfx" ]; then
    PYTHONPATH="$work/moved/lib/python3/dist-packages" /usr/bin/python3 -c "import tfx; print('python package after the move: ok')"
fi
echo "install check passed"
