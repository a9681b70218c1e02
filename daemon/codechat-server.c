/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechatd"

#include "config.h"

#include <errno.h>
#include <glib/gi18n.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "codechat-log.h"
#include "codechat-server.h"
#include "codechat-version.h"

struct _CodechatServer {
	GObject parent_instance;
	SoupServer *soup;      /* (owned) */
	CodechatHub *hub;      /* (owned) */
	GStrv allowed_origins; /* (owned) */
	gchar *uri;	       /* (owned) (nullable) ws:// or wss:// URI once listening */
	gboolean tls;	       /* a certificate is set: listen for https and wss */
	gint64 started_us;     /* monotonic */
};

G_DEFINE_FINAL_TYPE(CodechatServer, codechat_server, G_TYPE_OBJECT)

static gchar *
peer_string(SoupServerMessage *msg)
{
	GSocketAddress *addr = soup_server_message_get_remote_address(msg);
	g_autofree gchar *host = NULL;

	if (!G_IS_INET_SOCKET_ADDRESS(addr))
		return g_strdup("unknown");
	host = g_inet_address_to_string(
	    g_inet_socket_address_get_address(G_INET_SOCKET_ADDRESS(addr)));
	return g_strdup_printf("%s:%u",
			       host,
			       g_inet_socket_address_get_port(G_INET_SOCKET_ADDRESS(addr)));
}

/* runs before libsoup's own WebSocket handshake on the same path: a
 * status set here ends the request there */
static void
ws_http_cb(SoupServer *soup,
	   SoupServerMessage *msg,
	   const char *path,
	   GHashTable *query,
	   gpointer user_data)
{
	CodechatServer *self = CODECHAT_SERVER(user_data);
	const gchar *origin =
	    soup_message_headers_get_one(soup_server_message_get_request_headers(msg), "Origin");

	if (origin != NULL &&
	    (self->allowed_origins == NULL ||
	     !g_strv_contains((const gchar *const *)self->allowed_origins, origin))) {
		g_autofree gchar *peer = peer_string(msg);
		codechat_message(CODECHAT_LOG_FIELDS(.peer = peer),
				 "refusing a WebSocket from %s: origin %s is not allowed",
				 peer,
				 origin);
		soup_server_message_set_status(msg, SOUP_STATUS_FORBIDDEN, NULL);
		soup_server_message_set_response(msg,
						 "text/plain",
						 SOUP_MEMORY_STATIC,
						 "origin not allowed\n",
						 strlen("origin not allowed\n"));
		return;
	}
}

static void
ws_cb(SoupServer *soup,
      SoupServerMessage *msg,
      const char *path,
      SoupWebsocketConnection *conn,
      gpointer user_data)
{
	CodechatServer *self = CODECHAT_SERVER(user_data);
	g_autofree gchar *peer = peer_string(msg);

	/* the hub keeps its own reference: libsoup drops its one when we return */
	codechat_hub_add_connection(self->hub, conn, peer);
}

static void
healthz_cb(SoupServer *soup,
	   SoupServerMessage *msg,
	   const char *path,
	   GHashTable *query,
	   gpointer user_data)
{
	CodechatServer *self = CODECHAT_SERVER(user_data);
	const gchar *method = soup_server_message_get_method(msg);
	g_autoptr(JsonBuilder) builder = NULL;
	gchar *body;

	if (g_strcmp0(method, "GET") != 0 && g_strcmp0(method, "HEAD") != 0) {
		soup_server_message_set_status(msg, SOUP_STATUS_METHOD_NOT_ALLOWED, NULL);
		soup_message_headers_replace(soup_server_message_get_response_headers(msg),
					     "Allow",
					     "GET, HEAD");
		return;
	}
	builder = json_builder_new_immutable();
	json_builder_begin_object(builder);
	json_builder_set_member_name(builder, "status");
	json_builder_add_string_value(builder, "ok");
	json_builder_set_member_name(builder, "version");
	json_builder_add_string_value(builder, codechat_version());
	json_builder_set_member_name(builder, "connections");
	json_builder_add_int_value(builder, codechat_hub_get_n_connections(self->hub));
	json_builder_set_member_name(builder, "rooms");
	json_builder_add_int_value(builder, codechat_hub_get_n_rooms(self->hub));
	json_builder_set_member_name(builder, "uptime_s");
	json_builder_add_int_value(builder,
				   (g_get_monotonic_time() - self->started_us) / G_USEC_PER_SEC);
	json_builder_end_object(builder);
	body = codechat_builder_to_string(builder);
	soup_server_message_set_status(msg, SOUP_STATUS_OK, NULL);
	soup_server_message_set_response(msg,
					 "application/json",
					 SOUP_MEMORY_TAKE,
					 body,
					 strlen(body));
}

/* ADDR:PORT with an IPv4 or [IPv6] literal, or localhost */
static GSocketAddress *
parse_address(const gchar *address, GError **error)
{
	g_autofree gchar *host = NULL;
	g_autoptr(GInetAddress) inet = NULL;
	const gchar *port_str;
	guint64 port = 0;

	if (address[0] == '[') {
		const gchar *end = strchr(address, ']');
		if (end == NULL || end[1] != ':') {
			g_set_error(error,
				    G_IO_ERROR,
				    G_IO_ERROR_INVALID_ARGUMENT,
				    _("cannot parse listen address %s: expected [ADDR]:PORT"),
				    address);
			return NULL;
		}
		host = g_strndup(address + 1, end - address - 1);
		port_str = end + 2;
	} else {
		const gchar *colon = strrchr(address, ':');
		if (colon == NULL) {
			g_set_error(error,
				    G_IO_ERROR,
				    G_IO_ERROR_INVALID_ARGUMENT,
				    _("cannot parse listen address %s: expected ADDR:PORT"),
				    address);
			return NULL;
		}
		host = g_strndup(address, colon - address);
		port_str = colon + 1;
	}
	if (!g_ascii_string_to_unsigned(port_str, 10, 0, 65535, &port, NULL)) {
		g_set_error(error,
			    G_IO_ERROR,
			    G_IO_ERROR_INVALID_ARGUMENT,
			    _("invalid port in listen address %s"),
			    address);
		return NULL;
	}
	if (g_strcmp0(host, "localhost") == 0)
		inet = g_inet_address_new_loopback(G_SOCKET_FAMILY_IPV4);
	else if (host[0] == '\0')
		inet = g_inet_address_new_any(G_SOCKET_FAMILY_IPV4);
	else
		inet = g_inet_address_new_from_string(host);
	if (inet == NULL) {
		g_set_error(error,
			    G_IO_ERROR,
			    G_IO_ERROR_INVALID_ARGUMENT,
			    _("%s is not an IP address (use e.g. 127.0.0.1:7373 or [::1]:7373)"),
			    host);
		return NULL;
	}
	return g_inet_socket_address_new(inet, (guint16)port);
}

static gboolean
accept_any_certificate_cb(GTlsConnection *conn,
			  GTlsCertificate *peer_cert,
			  GTlsCertificateFlags errors,
			  gpointer user_data)
{
	return TRUE;
}

static gpointer
client_handshake_thread(gpointer user_data)
{
	GTlsConnection *client = user_data;
	GError *error = NULL;

	if (!g_tls_connection_handshake(client, NULL, &error)) {
		/* the server sees the end of the stream and gives up too */
		g_io_stream_close(G_IO_STREAM(client), NULL, NULL);
		return error;
	}
	return NULL;
}

static GIOStream *
stream_from_fd(gint fd, GError **error)
{
	g_autoptr(GSocket) socket = g_socket_new_from_fd(fd, error);

	if (socket == NULL) {
		close(fd);
		return NULL;
	}
	/* the check below must end even when one side stops answering */
	g_socket_set_timeout(socket, 5);
	return G_IO_STREAM(g_socket_connection_factory_create_connection(socket));
}

/*
 * glib-networking takes a key that does not belong to the certificate
 * without a word, and every handshake fails afterwards: shake hands with
 * ourselves once over a socket pair so that such a pair is refused at
 * startup, where the message can name the files
 */
static gboolean
check_key_matches(GTlsCertificate *certificate, GError **error)
{
	g_autoptr(GIOStream) server_stream = NULL;
	g_autoptr(GIOStream) client_stream = NULL;
	g_autoptr(GIOStream) server = NULL;
	g_autoptr(GIOStream) client = NULL;
	g_autoptr(GError) server_error = NULL;
	g_autoptr(GError) client_error = NULL;
	GThread *thread;
	gint fds[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
		gint saved_errno = errno;
		g_set_error(error,
			    G_IO_ERROR,
			    g_io_error_from_errno(saved_errno),
			    "socketpair: %s",
			    g_strerror(saved_errno));
		return FALSE;
	}
	server_stream = stream_from_fd(fds[0], error);
	if (server_stream == NULL) {
		close(fds[1]);
		return FALSE;
	}
	client_stream = stream_from_fd(fds[1], error);
	if (client_stream == NULL)
		return FALSE;
	server = g_tls_server_connection_new(server_stream, certificate, error);
	if (server == NULL)
		return FALSE;
	client = g_tls_client_connection_new(client_stream, NULL, error);
	if (client == NULL)
		return FALSE;
	g_signal_connect(client, "accept-certificate", G_CALLBACK(accept_any_certificate_cb), NULL);

	thread = g_thread_new("codechatd-tls-check", client_handshake_thread, client);
	if (!g_tls_connection_handshake(G_TLS_CONNECTION(server), NULL, &server_error))
		g_io_stream_close(server, NULL, NULL);
	client_error = g_thread_join(thread);
	/* the client's side says why ("signature verification has failed"),
	 * the server's often only that the client hung up */
	if (client_error != NULL) {
		g_propagate_error(error, g_steal_pointer(&client_error));
		return FALSE;
	}
	if (server_error != NULL) {
		g_propagate_error(error, g_steal_pointer(&server_error));
		return FALSE;
	}
	return TRUE;
}

/**
 * codechat_server_set_tls_files:
 * @cert_path: a PEM file with the certificate, maybe followed by its chain
 * @key_path: a PEM file with its private key
 *
 * Serves https:// and wss:// with this certificate from the next
 * codechat_server_listen() on.  Fails with a message that names the file
 * when a file cannot be read, holds no certificate or key, or the key
 * does not belong to the certificate; and when GIO has no TLS backend.
 */
gboolean
codechat_server_set_tls_files(CodechatServer *self,
			      const gchar *cert_path,
			      const gchar *key_path,
			      GError **error)
{
	g_autoptr(GTlsCertificate) certificate = NULL;
	g_autoptr(GError) error_local = NULL;
	g_autofree gchar *contents = NULL;
	GList *chain;

	g_return_val_if_fail(CODECHAT_IS_SERVER(self), FALSE);
	g_return_val_if_fail(cert_path != NULL, FALSE);
	g_return_val_if_fail(key_path != NULL, FALSE);

	if (!g_tls_backend_supports_tls(g_tls_backend_get_default())) {
		g_set_error_literal(error,
				    G_IO_ERROR,
				    G_IO_ERROR_NOT_SUPPORTED,
				    _("TLS is not available: GIO has no TLS backend (install "
				      "glib-networking)"));
		return FALSE;
	}
	/* read each file alone first, so that the message names the one at fault */
	if (!g_file_get_contents(cert_path, &contents, NULL, &error_local)) {
		g_set_error(error,
			    G_IO_ERROR,
			    G_IO_ERROR_FAILED,
			    _("cannot read the TLS certificate %s: %s"),
			    cert_path,
			    error_local->message);
		return FALSE;
	}
	chain = g_tls_certificate_list_new_from_file(cert_path, &error_local);
	if (chain == NULL) {
		g_set_error(error,
			    G_IO_ERROR,
			    G_IO_ERROR_FAILED,
			    _("cannot load the TLS certificate %s: %s"),
			    cert_path,
			    error_local != NULL ? error_local->message
						: _("no PEM-encoded certificate found"));
		return FALSE;
	}
	g_list_free_full(chain, g_object_unref);
	g_clear_pointer(&contents, g_free);
	if (!g_file_get_contents(key_path, &contents, NULL, &error_local)) {
		g_set_error(error,
			    G_IO_ERROR,
			    G_IO_ERROR_FAILED,
			    _("cannot read the TLS key %s: %s"),
			    key_path,
			    error_local->message);
		return FALSE;
	}
	certificate = g_tls_certificate_new_from_files(cert_path, key_path, &error_local);
	if (certificate == NULL) {
		g_set_error(error,
			    G_IO_ERROR,
			    G_IO_ERROR_FAILED,
			    _("cannot load the TLS key %s: %s"),
			    key_path,
			    error_local->message);
		return FALSE;
	}
	if (!check_key_matches(certificate, &error_local)) {
		g_set_error(error,
			    G_IO_ERROR,
			    G_IO_ERROR_FAILED,
			    _("the TLS key %s does not match the certificate %s: %s"),
			    key_path,
			    cert_path,
			    error_local->message);
		return FALSE;
	}
	g_object_set(self->soup, "tls-certificate", certificate, NULL);
	self->tls = TRUE;
	return TRUE;
}

gboolean
codechat_server_listen(CodechatServer *self, const gchar *address, GError **error)
{
	g_autoptr(GSocketAddress) addr = NULL;
	g_autoptr(GError) error_local = NULL;
	GSList *listeners;

	g_return_val_if_fail(CODECHAT_IS_SERVER(self), FALSE);

	addr = parse_address(address, error);
	if (addr == NULL)
		return FALSE;
	if (!soup_server_listen(self->soup,
				addr,
				self->tls ? SOUP_SERVER_LISTEN_HTTPS : 0,
				&error_local)) {
		g_set_error(error,
			    error_local->domain,
			    error_local->code,
			    _("cannot listen on %s: %s"),
			    address,
			    error_local->message);
		return FALSE;
	}
	/* not soup_server_get_uris(): it leaks an address in libsoup 3.2 */
	listeners = soup_server_get_listeners(self->soup);
	if (listeners != NULL) {
		g_autoptr(GSocketAddress) local =
		    g_socket_get_local_address(G_SOCKET(listeners->data), NULL);
		if (G_IS_INET_SOCKET_ADDRESS(local)) {
			GInetSocketAddress *inet = G_INET_SOCKET_ADDRESS(local);
			g_autofree gchar *host =
			    g_inet_address_to_string(g_inet_socket_address_get_address(inet));
			g_autoptr(GUri) ws = g_uri_build(G_URI_FLAGS_NONE,
							 self->tls ? "wss" : "ws",
							 NULL,
							 host,
							 g_inet_socket_address_get_port(inet),
							 CODECHAT_WS_PATH,
							 NULL,
							 NULL);
			g_free(self->uri);
			self->uri = g_uri_to_string(ws);
		}
	}
	g_slist_free(listeners);
	return TRUE;
}

const gchar *
codechat_server_get_uri(CodechatServer *self)
{
	g_return_val_if_fail(CODECHAT_IS_SERVER(self), NULL);
	return self->uri;
}

void
codechat_server_disconnect(CodechatServer *self)
{
	g_return_if_fail(CODECHAT_IS_SERVER(self));
	soup_server_disconnect(self->soup);
}

static void
codechat_server_finalize(GObject *object)
{
	CodechatServer *self = CODECHAT_SERVER(object);

	g_clear_object(&self->soup);
	g_clear_object(&self->hub);
	g_strfreev(self->allowed_origins);
	g_free(self->uri);
	G_OBJECT_CLASS(codechat_server_parent_class)->finalize(object);
}

static void
codechat_server_class_init(CodechatServerClass *klass)
{
	GObjectClass *object_class = G_OBJECT_CLASS(klass);
	object_class->finalize = codechat_server_finalize;
}

static void
codechat_server_init(CodechatServer *self)
{
	self->started_us = g_get_monotonic_time();
}

CodechatServer *
codechat_server_new(CodechatHub *hub,
		    const gchar *const *allowed_origins,
		    gboolean permessage_deflate)
{
	CodechatServer *self = g_object_new(CODECHAT_TYPE_SERVER, NULL);
	const gchar *protocols[] = {CODECHAT_SUBPROTOCOL, NULL};

	self->hub = g_object_ref(hub);
	self->allowed_origins = g_strdupv((gchar **)allowed_origins);
	self->soup = soup_server_new("server-header", codechat_server_string(), NULL);
	/* compressing per recipient costs CPU on every broadcast: opt in */
	if (!permessage_deflate)
		soup_server_remove_websocket_extension(self->soup,
						       SOUP_TYPE_WEBSOCKET_EXTENSION_DEFLATE);
	soup_server_add_handler(self->soup, CODECHAT_WS_PATH, ws_http_cb, self, NULL);
	soup_server_add_websocket_handler(self->soup,
					  CODECHAT_WS_PATH,
					  NULL,
					  (char **)protocols,
					  ws_cb,
					  self,
					  NULL);
	soup_server_add_handler(self->soup, "/healthz", healthz_cb, self, NULL);
	return self;
}
