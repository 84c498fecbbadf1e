// AnswerView: the conversation, the answer being streamed, and the latest answer's grounded
// phrases drawn in their masks' colours. Hovering a phrase reports it (the canvas highlights its
// mask); clicking selects it in the shared QItemSelectionModel.
#pragma once

#include "ui/studio_types.h"

#include <QTextBrowser>

class PhraseListModel;
class QItemSelectionModel;

class AnswerView : public QTextBrowser {
    Q_OBJECT

public:
    explicit AnswerView(QWidget* parent = nullptr);

    // The phrase rows and the selection shared with the canvas and the phrase list.
    void setPhraseModel(PhraseListModel* model, QItemSelectionModel* selection);

    // A question was sent: shows it and an empty answer that tokens stream into.
    void beginAnswer(const QString& question);
    void appendToken(const QString& delta);
    // The answer is complete: replaces the streamed text with the grounded answer.
    void finishAnswer(const StudioAnswer& answer);
    // The pending answer failed or was abandoned.
    void abandonAnswer(const QString& why);
    void clearConversation();
    // The conversation as plain text (copy / save).
    QString conversationText() const;
    // The row of the phrase at UTF-16 `offset` of the latest answer's text, or -1.
    int phraseRowAt(int offset) const;

signals:
    // The pointer entered (row >= 0) or left (-1) a phrase of the latest answer.
    void phraseHovered(int row);

private:
    struct Turn {
        QString question;
        QString answer;                  // plain text, markup removed
        QVector<GroundedPhrase> phrases; // empty for old turns (their masks are gone)
        bool pending   = false;
        bool cancelled = false;
        QString note;
    };
    void render();
    QString answerHtml(const Turn& turn, bool linked) const;

    QVector<Turn> turns_;
    QString streamed_;
    PhraseListModel* model_         = nullptr;
    QItemSelectionModel* selection_ = nullptr;
};
