/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechatd"

#include "config.h"

#include <glib/gi18n.h>
#include <string.h>

#include "codechat-config.h"
#include "codechat-server.h"
#include "codechat-store-redis.h"

void
codechat_daemon_settings_init(CodechatDaemonSettings *settings)
{
	memset(settings, 0, sizeof(*settings));
	settings->hello_timeout = G_MININT;
	settings->rate = G_MININT;
	settings->burst = G_MININT;
	settings->keepalive = G_MININT;
	settings->max_connections = G_MININT;
	settings->max_per_address = G_MININT;
	settings->handshake_timeout = G_MININT;
	settings->max_handshakes = G_MININT;
	settings->max_outbound = G_MININT;
	settings->history_max = G_MININT;
	codechat_hub_config_init(&settings->config);
}

void
codechat_daemon_settings_clear(CodechatDaemonSettings *settings)
{
	g_clear_pointer(&settings->listen, g_free);
	g_clear_pointer(&settings->data_dir, g_free);
	g_clear_pointer(&settings->sync, g_free);
	g_clear_pointer(&settings->bus, g_free);
	g_clear_pointer(&settings->notify, g_free);
	g_clear_pointer(&settings->nick, g_free);
	g_clear_pointer(&settings->log_format, g_free);
	g_clear_pointer(&settings->tls_cert, g_free);
	g_clear_pointer(&settings->tls_key, g_free);
	g_clear_pointer(&settings->redis, g_free);
	g_clear_pointer(&settings->allowed_origins, g_strfreev);
}

/**
 * codechat_daemon_settings_copy:
 * @dest: (out caller-allocates): cleared or uninitialised
 *
 * A deep copy, for a reload: the flags of the command line are kept
 * aside before they are resolved, and resolved anew over a fresh read of
 * the environment and the file.
 */
void
codechat_daemon_settings_copy(CodechatDaemonSettings *dest, const CodechatDaemonSettings *src)
{
	*dest = *src;
	dest->listen = g_strdup(src->listen);
	dest->data_dir = g_strdup(src->data_dir);
	dest->sync = g_strdup(src->sync);
	dest->bus = g_strdup(src->bus);
	dest->notify = g_strdup(src->notify);
	dest->nick = g_strdup(src->nick);
	dest->log_format = g_strdup(src->log_format);
	dest->tls_cert = g_strdup(src->tls_cert);
	dest->tls_key = g_strdup(src->tls_key);
	dest->redis = g_strdup(src->redis);
	dest->allowed_origins = g_strdupv(src->allowed_origins);
}

static gboolean
check_choice(const gchar *option, const gchar *value, const gchar *const *choices, GError **error)
{
	g_autofree gchar *list = NULL;

	if (value == NULL || g_strv_contains(choices, value))
		return TRUE;
	list = g_strjoinv(", ", (gchar **)choices);
	g_set_error(error,
		    G_OPTION_ERROR,
		    G_OPTION_ERROR_BAD_VALUE,
		    _("%s must be one of %s, not “%s”"),
		    option,
		    list,
		    value);
	return FALSE;
}

static gboolean
check_uint(const gchar *option, gint value, gint min, guint *out, GError **error)
{
	if (value < min) {
		g_set_error(error,
			    G_OPTION_ERROR,
			    G_OPTION_ERROR_BAD_VALUE,
			    _("%s must be at least %d"),
			    option,
			    min);
		return FALSE;
	}
	*out = (guint)value;
	return TRUE;
}

/* a URL that codechat_store_redis_new() takes; whether Redis answers
 * there is for the start to find out */
static gboolean
check_redis_url(const gchar *url, GError **error)
{
	g_autofree gchar *host = NULL;
	g_autofree gchar *socket_path = NULL;
	gint port, db;

	if (url == NULL)
		return TRUE;
	return codechat_store_redis_parse_url(url, &host, &port, &socket_path, &db, error);
}

/* --tls-cert and --tls-key go together */
static gboolean
check_tls_pair(const gchar *cert, const gchar *key, GError **error)
{
	if ((cert == NULL) == (key == NULL))
		return TRUE;
	g_set_error_literal(error,
			    G_OPTION_ERROR,
			    G_OPTION_ERROR_BAD_VALUE,
			    cert != NULL
				? _("--tls-cert needs --tls-key (the certificate's private key)")
				: _("--tls-key needs --tls-cert (the certificate)"));
	return FALSE;
}

/*
 * Protected mode, after Redis': with no accounts, anyone who reaches the
 * port can chat under any nick, which is fine on loopback only.  The
 * listen address counts as loopback when its host is "localhost", in
 * 127.0.0.0/8 or ::1; a host name other than localhost does not.
 */
gboolean
codechat_listen_is_loopback(const gchar *listen)
{
	g_autofree gchar *host = NULL;
	g_autoptr(GInetAddress) addr = NULL;
	const gchar *colon = strrchr(listen, ':');

	host = colon != NULL ? g_strndup(listen, (gsize)(colon - listen)) : g_strdup(listen);
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		gchar *inner = g_strndup(host + 1, strlen(host) - 2);
		g_free(host);
		host = inner;
	}
	if (g_ascii_strcasecmp(host, "localhost") == 0)
		return TRUE;
	addr = g_inet_address_new_from_string(host);
	return addr != NULL && g_inet_address_get_is_loopback(addr);
}

/* the flags are in the CodechatDaemonSettings; these are the layers below */
typedef struct {
	GKeyFile *file;		/* (unowned) (nullable) */
	const gchar *file_path; /* (unowned) (nullable) */
} Layers;

static gchar *
env_name(const gchar *key)
{
	g_autofree gchar *upper = g_ascii_strup(key, -1);
	g_strdelimit(upper, "-", '_');
	return g_strconcat("CODECHATD_", upper, NULL);
}

/* a value of the file that is not UTF-8 is an error, not a missing key:
 * g_key_file_get_string() returns NULL for it */
static gboolean
file_error(Layers *layers, const gchar *key, const GError *error_local, GError **error)
{
	g_set_error(error,
		    G_OPTION_ERROR,
		    G_OPTION_ERROR_BAD_VALUE,
		    _("%s: key %s: %s"),
		    layers->file_path,
		    key,
		    error_local->message);
	return FALSE;
}

/* @value: (inout): the flag, then the setting */
static gboolean
layer_string(Layers *layers, const gchar *key, const gchar *fallback, gchar **value, GError **error)
{
	g_autofree gchar *env = env_name(key);
	const gchar *env_value = g_getenv(env);
	g_autoptr(GError) error_local = NULL;

	if (*value != NULL)
		return TRUE;
	if (env_value != NULL && env_value[0] != '\0') {
		*value = g_strdup(env_value);
		return TRUE;
	}
	if (layers->file != NULL && g_key_file_has_key(layers->file, "daemon", key, NULL)) {
		*value = g_key_file_get_string(layers->file, "daemon", key, &error_local);
		if (*value == NULL)
			return file_error(layers, key, error_local, error);
		return TRUE;
	}
	*value = g_strdup(fallback);
	return TRUE;
}

static gboolean
layer_int(Layers *layers, const gchar *key, gint flag, gint fallback, gint *out, GError **error)
{
	g_autofree gchar *env = env_name(key);
	const gchar *value = g_getenv(env);
	g_autoptr(GError) error_local = NULL;
	gint64 parsed;

	if (flag != G_MININT) {
		*out = flag;
		return TRUE;
	}
	if (value != NULL && value[0] != '\0') {
		if (!g_ascii_string_to_signed(value, 10, 0, G_MAXINT, &parsed, &error_local)) {
			g_set_error(error,
				    G_OPTION_ERROR,
				    G_OPTION_ERROR_BAD_VALUE,
				    "%s: %s",
				    env,
				    error_local->message);
			return FALSE;
		}
		*out = (gint)parsed;
		return TRUE;
	}
	if (layers->file != NULL && g_key_file_has_key(layers->file, "daemon", key, NULL)) {
		*out = g_key_file_get_integer(layers->file, "daemon", key, &error_local);
		if (error_local != NULL)
			return file_error(layers, key, error_local, error);
		return TRUE;
	}
	*out = fallback;
	return TRUE;
}

static gboolean
layer_bool(Layers *layers, const gchar *key, gboolean flag)
{
	g_autofree gchar *env = env_name(key);
	const gchar *value = g_getenv(env);

	if (flag)
		return TRUE;
	if (value != NULL && value[0] != '\0')
		return g_strcmp0(value, "1") == 0 || g_ascii_strcasecmp(value, "true") == 0 ||
		       g_ascii_strcasecmp(value, "yes") == 0;
	if (layers->file != NULL)
		return g_key_file_get_boolean(layers->file, "daemon", key, NULL);
	return FALSE;
}

/* @value: (inout): the flag, then the setting; NULL when there is none */
static gboolean
layer_strv(Layers *layers, const gchar *key, GStrv *value, GError **error)
{
	g_autofree gchar *env = env_name(key);
	const gchar *env_value = g_getenv(env);
	g_autoptr(GError) error_local = NULL;

	if (*value != NULL)
		return TRUE;
	if (env_value != NULL && env_value[0] != '\0') {
		*value = g_strsplit(env_value, ",", -1);
		return TRUE;
	}
	if (layers->file != NULL && g_key_file_has_key(layers->file, "daemon", key, NULL)) {
		*value =
		    g_key_file_get_string_list(layers->file, "daemon", key, NULL, &error_local);
		if (*value == NULL)
			return file_error(layers, key, error_local, error);
	}
	return TRUE;
}

/**
 * codechat_daemon_config_load:
 * @explicit_path: (nullable): the --config file, which must exist; %NULL
 *   for the default places, which may not
 * @file: (out) (transfer full): the file read, or %NULL when there was none
 * @file_path: (out) (transfer full): its path, or %NULL
 */
gboolean
codechat_daemon_config_load(const gchar *explicit_path,
			    GKeyFile **file_out,
			    gchar **file_path,
			    GError **error)
{
	g_autoptr(GKeyFile) file = g_key_file_new();
	g_autoptr(GPtrArray) candidates = g_ptr_array_new_with_free_func(g_free);
	g_autoptr(GError) error_local = NULL;

	*file_out = NULL;
	*file_path = NULL;
	if (explicit_path != NULL) {
		g_ptr_array_add(candidates, g_strdup(explicit_path));
	} else {
		g_ptr_array_add(
		    candidates,
		    g_build_filename(g_get_user_config_dir(), "codechat", "codechatd.conf", NULL));
		g_ptr_array_add(candidates, g_strdup(SYSCONFDIR "/codechat/codechatd.conf"));
	}
	for (guint i = 0; i < candidates->len; i++) {
		const gchar *path = g_ptr_array_index(candidates, i);
		g_clear_error(&error_local);
		if (g_key_file_load_from_file(file, path, G_KEY_FILE_NONE, &error_local)) {
			*file_out = g_steal_pointer(&file);
			*file_path = g_strdup(path);
			return TRUE;
		}
		if (explicit_path != NULL ||
		    !g_error_matches(error_local, G_FILE_ERROR, G_FILE_ERROR_NOENT)) {
			g_set_error(error,
				    G_OPTION_ERROR,
				    G_OPTION_ERROR_FAILED,
				    _("cannot read config file %s: %s"),
				    path,
				    error_local->message);
			return FALSE;
		}
	}
	return TRUE;
}

/**
 * codechat_daemon_settings_resolve_paths:
 * @file: (nullable): the config file, from codechat_daemon_config_load()
 * @file_path: (nullable): its path, for messages
 *
 * Layers listen and data-dir, all that `codechatd user` needs.
 */
gboolean
codechat_daemon_settings_resolve_paths(CodechatDaemonSettings *settings,
				       GKeyFile *file,
				       const gchar *file_path,
				       GError **error)
{
	Layers layers = {file, file_path};

	if (!layer_string(&layers, "listen", DEFAULT_LISTEN, &settings->listen, error) ||
	    !layer_string(&layers, "data-dir", NULL, &settings->data_dir, error))
		return FALSE;
	if (settings->data_dir == NULL)
		settings->data_dir = g_build_filename(g_get_user_data_dir(), "codechat", NULL);
	return TRUE;
}

/**
 * codechat_daemon_settings_resolve:
 * @file: (nullable): the config file, from codechat_daemon_config_load()
 * @file_path: (nullable): its path, for messages
 *
 * Layers the rest of the command line's settings in @settings, after
 * codechat_daemon_settings_resolve_paths(), over the CODECHATD_* environment
 * variables, @file and the defaults, and checks them.  On success every
 * string setting but bus, nick, log_format and the TLS files is set and
 * @settings->config holds the numbers.
 */
gboolean
codechat_daemon_settings_resolve(CodechatDaemonSettings *settings,
				 GKeyFile *file,
				 const gchar *file_path,
				 GError **error)
{
	Layers layers = {file, file_path};
	CodechatHubConfig *config = &settings->config;
	const gchar *bus_choices[] = {"session", "system", "none", NULL};
	const gchar *notify_choices[] = {"off", "mentions", "all", NULL};
	const gchar *log_choices[] = {"text", "json", "journal", NULL};
	const gchar *sync_choices[] = {"full", "normal", NULL};
	gint hello_timeout, rate, burst, keepalive, max_connections;
	gint max_per_address, handshake_timeout, max_handshakes, max_outbound, history_max;
	guint max_outbound_u = 0;

	if (!layer_string(&layers, "sync", "full", &settings->sync, error) ||
	    !layer_string(&layers, "bus", NULL, &settings->bus, error) ||
	    !layer_string(&layers, "notify", "off", &settings->notify, error) ||
	    !layer_string(&layers, "nick", NULL, &settings->nick, error) ||
	    !layer_string(&layers, "log-format", NULL, &settings->log_format, error) ||
	    !layer_string(&layers, "tls-cert", NULL, &settings->tls_cert, error) ||
	    !layer_string(&layers, "tls-key", NULL, &settings->tls_key, error) ||
	    !layer_string(&layers, "redis", NULL, &settings->redis, error) ||
	    !layer_strv(&layers, "allow-origin", &settings->allowed_origins, error))
		return FALSE;
	/* an empty redis= in the file: SQLite, as without it */
	if (settings->redis != NULL && settings->redis[0] == '\0')
		g_clear_pointer(&settings->redis, g_free);
	settings->deflate = layer_bool(&layers, "permessage-deflate", settings->deflate);
	settings->allow_anonymous =
	    layer_bool(&layers, "allow-anonymous", settings->allow_anonymous);
	if (!layer_int(&layers,
		       "hello-timeout",
		       settings->hello_timeout,
		       (gint)config->hello_timeout,
		       &hello_timeout,
		       error) ||
	    !layer_int(&layers, "rate-limit", settings->rate, (gint)config->rate, &rate, error) ||
	    !layer_int(&layers,
		       "rate-burst",
		       settings->burst,
		       (gint)config->burst,
		       &burst,
		       error) ||
	    !layer_int(&layers,
		       "keepalive",
		       settings->keepalive,
		       (gint)config->keepalive,
		       &keepalive,
		       error) ||
	    !layer_int(&layers,
		       "max-connections",
		       settings->max_connections,
		       (gint)config->max_connections,
		       &max_connections,
		       error) ||
	    /* on loopback every peer is this machine's (a local reverse
	     * proxy, load tests): no limit per address unless asked for */
	    !layer_int(
		&layers,
		"max-connections-per-address",
		settings->max_per_address,
		codechat_listen_is_loopback(settings->listen) ? 0 : (gint)config->max_per_address,
		&max_per_address,
		error) ||
	    !layer_int(&layers,
		       "handshake-timeout",
		       settings->handshake_timeout,
		       CODECHAT_DEFAULT_HANDSHAKE_TIMEOUT,
		       &handshake_timeout,
		       error) ||
	    !layer_int(&layers,
		       "max-handshakes",
		       settings->max_handshakes,
		       CODECHAT_DEFAULT_MAX_HANDSHAKES,
		       &max_handshakes,
		       error) ||
	    !layer_int(&layers,
		       "max-outbound-bytes",
		       settings->max_outbound,
		       (gint)config->max_outbound,
		       &max_outbound,
		       error) ||
	    !layer_int(&layers, "history-max", settings->history_max, 0, &history_max, error) ||
	    !check_choice("--bus", settings->bus, bus_choices, error) ||
	    !check_choice("--notify", settings->notify, notify_choices, error) ||
	    !check_choice("--log-format", settings->log_format, log_choices, error) ||
	    !check_choice("--sync", settings->sync, sync_choices, error) ||
	    !check_uint("--hello-timeout", hello_timeout, 1, &config->hello_timeout, error) ||
	    !check_uint("--rate-limit", rate, 0, &config->rate, error) ||
	    !check_uint("--rate-burst", burst, 1, &config->burst, error) ||
	    !check_uint("--keepalive", keepalive, 0, &config->keepalive, error) ||
	    !check_uint("--max-connections", max_connections, 0, &config->max_connections, error) ||
	    !check_uint("--max-connections-per-address",
			max_per_address,
			0,
			&config->max_per_address,
			error) ||
	    !check_uint("--handshake-timeout",
			handshake_timeout,
			0,
			&settings->server_handshake_timeout,
			error) ||
	    !check_uint("--max-handshakes",
			max_handshakes,
			0,
			&settings->server_max_handshakes,
			error) ||
	    !check_uint("--max-outbound-bytes", max_outbound, 0, &max_outbound_u, error) ||
	    !check_uint("--history-max", history_max, 0, &settings->store_history_max, error) ||
	    !check_redis_url(settings->redis, error) ||
	    (settings->nick != NULL && !codechat_validate_nick(settings->nick, error)) ||
	    !check_tls_pair(settings->tls_cert, settings->tls_key, error))
		return FALSE;
	config->max_outbound = max_outbound_u;
	return TRUE;
}
