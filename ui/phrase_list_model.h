// PhraseListModel: the grounded phrases of the current answer, one row per phrase (plus one per
// mask no phrase refers to). The answer view, the phrase list and the canvas share one
// QItemSelectionModel over it, so selecting a phrase highlights its mask and the reverse.
#pragma once

#include "ui/studio_types.h"

#include <QAbstractListModel>

class PhraseListModel : public QAbstractListModel {
    Q_OBJECT

public:
    // Extra roles besides DisplayRole (text), DecorationRole (colour) and CheckStateRole
    // (mask visible).
    enum Role { MaskIndexRole = Qt::UserRole + 1, BeginRole, EndRole };

    explicit PhraseListModel(QObject* parent = nullptr);

    void setPhrases(const QVector<GroundedPhrase>& phrases);
    const QVector<GroundedPhrase>& phrases() const { return phrases_; }
    // The first row whose phrase refers to `mask`, or -1.
    int rowForMask(int mask) const;
    bool isMaskVisible(int mask) const;

    int rowCount(const QModelIndex& parent = QModelIndex()) const override;
    QVariant data(const QModelIndex& index, int role = Qt::DisplayRole) const override;
    bool setData(const QModelIndex& index, const QVariant& value, int role) override;
    Qt::ItemFlags flags(const QModelIndex& index) const override;

signals:
    // A mask was shown or hidden from the list's check box.
    void maskVisibilityChanged(int mask, bool visible);

private:
    QVector<GroundedPhrase> phrases_;
    QVector<bool> visible_; // per row
};
