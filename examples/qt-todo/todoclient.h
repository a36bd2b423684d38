#pragma once

#include <QJsonObject>
#include <QList>
#include <QMap>
#include <QNetworkAccessManager>
#include <QObject>
#include <QWebSocket>

#include <functional>

class QNetworkReply;

// Signs in to an EDS backend, keeps a model of its `todos` collection and follows that collection's changes
// over a Managed WebSocket, in the spirit of Qt Cloud Services' websocketclient.cpp.
//
// Output: one compact JSON document per line on stdout — every socket message as received, plus
// {"list":N} after the first listing, {"ready":true} once the model is loaded and the socket open, and
// {"todos":N} (the model size) after each change. Diagnostics go to stderr.
class TodoClient : public QObject
{
    Q_OBJECT
public:
    TodoClient(const QString &baseUrl, const QString &backendId, const QString &username,
               const QString &password, QObject *parent = nullptr);

    void start();

signals:
    void finished(int exitCode);

private:
    using JsonHandler = std::function<void(const QJsonObject &)>;

    QNetworkRequest request(const QString &path) const;
    void expectJson(QNetworkReply *reply, const QString &what, const JsonHandler &onSuccess);
    void fail(const QString &message);
    void finish(int exitCode);

    void requestSocketUri();
    void listTodos();
    void onMessage(const QString &text);
    void apply(const QJsonObject &message);

    QNetworkAccessManager m_network;
    QWebSocket m_socket;
    const QString m_baseUrl;
    const QByteArray m_backendId;
    const QString m_username;
    const QString m_password;
    QByteArray m_accessToken;

    QMap<QString, QJsonObject> m_todos; // id -> todo, as the server last sent it
    QList<QJsonObject> m_early;         // changes that arrived before the first listing
    bool m_connected = false;
    bool m_listed = false;
    bool m_done = false;
};
