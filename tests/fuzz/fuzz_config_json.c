/* fuzz_config_json.c - libFuzzer harness of config.json parsing (src/io/hfmodel.c).
 *
 * The input is a config.json, optionally followed by the marker line "#INDEX#" and
 * a model.safetensors.index.json. Without an index the config is parsed with
 * model_config_load and the accepted values are checked for what the model code
 * assumes (positive sizes, heads divisible by KV heads). With an index the whole
 * directory is opened with hfmodel_open, which parses both JSON files and then
 * tries the shards the index names (absent here unless the index names one of the
 * two JSON files, which is then read as a safetensors file: an error either way).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ailora/hfmodel.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char config[600], index[600];
    fuzz_path(config, sizeof config, "config.json");
    fuzz_path(index, sizeof index, "model.safetensors.index.json");
    const char *marker = "\n#INDEX#\n";
    const uint8_t *split = memmem(data, size, marker, strlen(marker));
    size_t nconfig = split ? (size_t)(split - data) : size;
    fuzz_write(config, data, nconfig);
    ail_error_clear();
    if (!split) {
        unlink(index);
        ModelConfig c;
        int rc = model_config_load(config, &c);
        fuzz_check_error(rc);
        if (rc == AIL_OK) {
            FUZZ_ASSERT(c.hidden_size > 0 && c.intermediate_size > 0 && c.num_hidden_layers > 0);
            FUZZ_ASSERT(c.num_attention_heads > 0 && c.num_key_value_heads > 0 && c.head_dim > 0);
            FUZZ_ASSERT(c.vocab_size > 0 && c.max_position_embeddings > 0);
            FUZZ_ASSERT(c.num_attention_heads % c.num_key_value_heads == 0);
            FUZZ_ASSERT(c.rms_norm_eps > 0 && c.rope_theta > 0 && isfinite(c.rms_norm_eps) && isfinite(c.rope_theta));
            FUZZ_ASSERT(memchr(c.model_type, '\0', sizeof c.model_type) != NULL);
            FUZZ_ASSERT(dtype_is_float(c.torch_dtype));
        }
        return 0;
    }
    size_t skip = nconfig + strlen(marker);
    fuzz_write(index, data + skip, size - skip);
    HFModel m;
    int rc = hfmodel_open(fuzz_scratch(), &m);
    fuzz_check_error(rc);
    if (rc == AIL_OK) hfmodel_close(&m);
    return 0;
}
